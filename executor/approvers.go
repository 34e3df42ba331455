package executor

import (
	"context"
	"time"
)

// Approver is a row of public.approvers: an authenticated user who may
// approve (and reject) runs that someone else created.
type Approver struct {
	UserID  string    `json:"user_id"`
	Name    string    `json:"name"`
	AddedBy string    `json:"added_by"`
	AddedAt time.Time `json:"added_at"`
}

// ApproverStore manages the approvers list (the operator CLI's `opsd
// approvers`). Both stores implement it.
type ApproverStore interface {
	// AddApprover lists userID (an auth user id) as an approver; adding one
	// again updates the name.
	AddApprover(ctx context.Context, userID, name string) error
	// RemoveApprover takes userID off the list; false when it was not on it.
	RemoveApprover(ctx context.Context, userID string) (bool, error)
	// ListApprovers lists approvers, oldest first.
	ListApprovers(ctx context.Context) ([]Approver, error)
}

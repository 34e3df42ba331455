package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/opscontrolroom/opsd/executor"
)

var _ executor.ApproverStore = (*Store)(nil)

// AddApprover lists userID as an approver (an upsert by user id).
func (s *Store) AddApprover(ctx context.Context, userID, name string) error {
	op := "add approver " + userID
	u, err := parseUUID(op, userID)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO public.approvers (user_id, name) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET name = excluded.name`, u, name)
	return pgError(ctx, op, err)
}

// RemoveApprover takes userID off the approvers list.
func (s *Store) RemoveApprover(ctx context.Context, userID string) (bool, error) {
	op := "remove approver " + userID
	u, err := parseUUID(op, userID)
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM public.approvers WHERE user_id = $1`, u)
	if err != nil {
		return false, pgError(ctx, op, err)
	}
	return tag.RowsAffected() > 0, nil
}

// ListApprovers lists approvers, oldest first.
func (s *Store) ListApprovers(ctx context.Context) ([]executor.Approver, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id::text, name, added_by, added_at FROM public.approvers ORDER BY added_at, user_id`)
	if err != nil {
		return nil, pgError(ctx, "list approvers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (executor.Approver, error) {
		var a executor.Approver
		err := r.Scan(&a.UserID, &a.Name, &a.AddedBy, &a.AddedAt)
		return a, err
	})
	if err != nil {
		return nil, pgError(ctx, "list approvers", err)
	}
	return out, nil
}

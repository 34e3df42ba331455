package reststore

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/internal/wire"
)

var _ executor.ApproverStore = (*Store)(nil)

// AddApprover lists userID as an approver (POST /approvers, merge-duplicates).
func (s *Store) AddApprover(ctx context.Context, userID, name string) error {
	if !restUUIDPattern.MatchString(userID) {
		return wire.InvalidInput("add approver", "user id %q is not a UUID (an auth.users id)", userID)
	}
	row := map[string]string{"user_id": userID, "name": name, "added_by": "service_role"}
	if err := s.insert(ctx, "add_approver", "approvers", url.Values{"on_conflict": {"user_id"}}, row,
		"resolution=merge-duplicates", restRetrySafe); err != nil {
		return fmt.Errorf("add approver %s: %w", userID, err)
	}
	return nil
}

// RemoveApprover takes userID off the list (DELETE /approvers).
func (s *Store) RemoveApprover(ctx context.Context, userID string) (bool, error) {
	if !restUUIDPattern.MatchString(userID) {
		return false, wire.InvalidInput("remove approver", "user id %q is not a UUID (an auth.users id)", userID)
	}
	var gone []executor.Approver
	_, err := s.c.do(ctx, restRequest{op: "remove_approver", method: http.MethodDelete, path: "approvers",
		query: url.Values{"user_id": {"eq." + userID}}, prefer: "return=representation", policy: restRetrySafe}, &gone)
	if err != nil {
		return false, fmt.Errorf("remove approver %s: %w", userID, err)
	}
	return len(gone) > 0, nil
}

// ListApprovers lists approvers, oldest first.
func (s *Store) ListApprovers(ctx context.Context) ([]executor.Approver, error) {
	var out []executor.Approver
	q := url.Values{"select": {"user_id,name,added_by,added_at"}, "order": {"added_at.asc,user_id.asc"}}
	if err := s.get(ctx, "list_approvers", "approvers", q, &out); err != nil {
		return nil, fmt.Errorf("list approvers: %w", err)
	}
	return out, nil
}

package supabase

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/jackc/pgx/v5"

	"github.com/opscontrolroom/opsd/executor"
)

var (
	_ executor.ApproverStore = (*PGStore)(nil)
	_ executor.ApproverStore = (*RESTStore)(nil)
)

// AddApprover lists userID as an approver (an upsert by user id).
func (s *PGStore) AddApprover(ctx context.Context, userID, name string) error {
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
func (s *PGStore) RemoveApprover(ctx context.Context, userID string) (bool, error) {
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
func (s *PGStore) ListApprovers(ctx context.Context) ([]executor.Approver, error) {
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

// AddApprover lists userID as an approver (POST /approvers, merge-duplicates).
func (s *RESTStore) AddApprover(ctx context.Context, userID, name string) error {
	if !restUUIDPattern.MatchString(userID) {
		return invalidInput("add approver", "user id %q is not a UUID (an auth.users id)", userID)
	}
	row := map[string]string{"user_id": userID, "name": name, "added_by": "service_role"}
	if err := s.insert(ctx, "add_approver", "approvers", url.Values{"on_conflict": {"user_id"}}, row,
		"resolution=merge-duplicates", restRetrySafe); err != nil {
		return fmt.Errorf("add approver %s: %w", userID, err)
	}
	return nil
}

// RemoveApprover takes userID off the list (DELETE /approvers).
func (s *RESTStore) RemoveApprover(ctx context.Context, userID string) (bool, error) {
	if !restUUIDPattern.MatchString(userID) {
		return false, invalidInput("remove approver", "user id %q is not a UUID (an auth.users id)", userID)
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
func (s *RESTStore) ListApprovers(ctx context.Context) ([]executor.Approver, error) {
	var out []executor.Approver
	q := url.Values{"select": {"user_id,name,added_by,added_at"}, "order": {"added_at.asc,user_id.asc"}}
	if err := s.get(ctx, "list_approvers", "approvers", q, &out); err != nil {
		return nil, fmt.Errorf("list approvers: %w", err)
	}
	return out, nil
}

package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opscontrolroom/opsd/executor"
)

// pgError translates an error from pgx into the executor's typed errors, at
// the boundary, so nothing above the store sees a pgx type or matches a string.
//
// When ctx is done the context's own error is returned (wrapped with op and
// the driver's error): a cancelled call must satisfy
// errors.Is(err, context.Canceled) whichever way pgx noticed the cancellation
// (a cancel request answered with SQLSTATE 57014, or a deadline on the socket).
func pgError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: %w", op, err)
		}
		return fmt.Errorf("%s: %w (%w)", op, ctxErr, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// A context other than ctx (a child the caller derived) ran out.
		return fmt.Errorf("%s: %w", op, err)
	}
	se := &executor.StoreError{Op: op, Err: err}
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		se.Kind, se.Message = executor.ErrNotFound, "no such row"
	case errors.As(err, &pgErr):
		se.Kind, se.Code, se.Message = sqlStateKind(pgErr.Code), pgErr.Code, pgErr.Message
		if pgErr.Detail != "" {
			se.Message += ": " + pgErr.Detail
		}
		if pgErr.Hint != "" {
			se.Message += " (" + pgErr.Hint + ")"
		}
	case isNetworkError(err):
		se.Kind = executor.ErrTransient
	default:
		// What is left is raised by pgx before anything reaches the server
		// (an argument it cannot encode) or after (a result it cannot
		// scan): retrying the same call cannot help.
		se.Kind = executor.ErrInvalidInput
	}
	return se
}

// sqlStateKind maps a SQLSTATE to an error kind. Unlisted codes of classes
// that describe the request (22 data, 23 integrity, 42 syntax/access) and
// anything else unknown are permanent: invalid input.
func sqlStateKind(code string) error {
	switch code {
	case "23505", "23503": // unique_violation, foreign_key_violation
		return executor.ErrConflict
	case "42501": // insufficient_privilege
		return executor.ErrPermission
	case "P0002": // no_data_found (a function's "not found")
		return executor.ErrNotFound
	case "42883", "42P01", "3F000":
		// undefined_function, undefined_table, invalid_schema_name: the
		// schema is not what this binary needs (migrations pending), which
		// is no fault of the arguments; like PostgREST's PGRST202.
		return executor.ErrNotFound
	case "22P02", "22023", "23514", "23502", "P0001", "22007", "42703", "21000":
		// invalid_text_representation, invalid_parameter_value,
		// check_violation, not_null_violation, raise_exception,
		// invalid_datetime_format, undefined_column, cardinality_violation
		// (the same key twice in one upsert batch).
		return executor.ErrInvalidInput
	case "40001", "40P01", // serialization_failure, deadlock_detected
		"55P03",                   // lock_not_available
		"57014",                   // query_canceled (statement_timeout; a cancelled ctx is handled before)
		"57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
		return executor.ErrTransient
	}
	switch {
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"), // insufficient resources (too_many_connections)
		strings.HasPrefix(code, "58"): // system error (I/O)
		return executor.ErrTransient
	}
	return executor.ErrInvalidInput
}

// isNetworkError reports failures of the connection rather than the request:
// dial errors, resets, timeouts, a server gone mid-query.
func isNetworkError(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.As(err, &netErr) || errors.As(err, &connectErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

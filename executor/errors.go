package executor

import (
	"errors"
	"fmt"
)

// Sentinel error kinds. Store implementations translate vendor errors (pgx,
// PostgREST bodies, HTTP statuses) into a *StoreError whose Kind is one of these,
// so callers test with errors.Is and never match strings.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrPermission   = errors.New("permission denied")
	ErrInvalidInput = errors.New("invalid input")
	ErrTransient    = errors.New("transient failure")
	// ErrLeaseLost: the write was refused because the writing attempt no
	// longer holds the run's lease (it was reaped, finished or claimed again).
	ErrLeaseLost = errors.New("lease lost")
)

// StoreError is a store failure with its kind, the operation and the backend's
// own code and message (SQLSTATE or PostgREST code).
type StoreError struct {
	Kind    error  // one of the sentinels above
	Op      string // what was being done, e.g. "claim_run"
	Code    string // SQLSTATE / PostgREST code, or HTTP status for non-JSON errors
	Message string
	Status  int // HTTP status when the error came through REST
	Err     error
}

func (e *StoreError) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Code != "" {
		return fmt.Sprintf("%s: %s (%s): %s", e.Op, e.Kind, e.Code, msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Kind, msg)
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *StoreError) Is(target error) bool { return target == e.Kind }

func (e *StoreError) Unwrap() error { return e.Err }

// Retryable reports whether err is worth retrying later (transient kinds).
func Retryable(err error) bool { return errors.Is(err, ErrTransient) }

// Package wire is what the two stores, pgstore and reststore, send and read
// alike: the rows of append_run_rows and finish_run, the arguments and
// answers of the operations functions, lease arithmetic, and the typed
// errors they raise before reaching the database.
package wire

import (
	"encoding/json"
	"fmt"

	"github.com/opscontrolroom/opsd/executor"
)

// InvalidInput is a client-side validation failure, typed like the server's.
func InvalidInput(op, format string, args ...any) error {
	return &executor.StoreError{Kind: executor.ErrInvalidInput, Op: op, Message: fmt.Sprintf(format, args...)}
}

// nullRaw is NULL for an empty or null document.
func NullRaw(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// nullString is NULL for "".
func NullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

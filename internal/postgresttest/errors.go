package postgresttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// apiError is PostgREST's JSON error body plus the HTTP status it is sent with.
type apiError struct {
	Status  int     `json:"-"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Details *string `json:"details"`
	Hint    *string `json:"hint"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newAPIError(status int, code, message, details, hint string) *apiError {
	return &apiError{Status: status, Code: code, Message: message, Details: strp(details), Hint: strp(hint)}
}

// errorResponse renders err as PostgREST does. role is the impersonated
// role: an insufficient_privilege error is 401 for the anonymous role and 403
// for any other.
func errorResponse(err error, role string) *response {
	var ae *apiError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &pe):
		ae = &apiError{
			Status:  statusForSQLState(pe.Code, role),
			Code:    pe.Code,
			Message: pe.Message,
			Details: strp(pe.Detail),
			Hint:    strp(pe.Hint),
		}
	default:
		// The database could not be reached or the connection broke: PostgREST
		// answers 503 with a group 0 (connection) code.
		ae = newAPIError(http.StatusServiceUnavailable, "PGRST001", "Database client error", err.Error(), "")
	}
	body, _ := json.Marshal(ae)
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	if ae.Status == http.StatusUnauthorized && ae.Code == "PGRST301" {
		h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+ae.Message+`"`)
	}
	return &response{status: ae.Status, header: h, body: body}
}

// statusForSQLState is the table of PostgREST's errors reference, "HTTP
// Status Codes": exact codes first, then classes, then 400 for the rest.
func statusForSQLState(code, role string) int {
	switch code {
	case "23503", "23505":
		return http.StatusConflict
	case "25006":
		return http.StatusMethodNotAllowed
	case "53400":
		return http.StatusInternalServerError
	case "P0001":
		return http.StatusBadRequest
	case "42883", "42P01":
		return http.StatusNotFound
	case "42P17":
		return http.StatusInternalServerError
	case "42501":
		if role == "anon" {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	// RAISE sqlstate 'PTxyz' answers with status xyz.
	if len(code) == 5 && strings.HasPrefix(code, "PT") {
		if n, err := strconv.Atoi(code[2:]); err == nil && n >= 100 && n <= 599 {
			return n
		}
	}
	if len(code) < 2 {
		return http.StatusBadRequest
	}
	switch code[:2] {
	case "08", "53":
		return http.StatusServiceUnavailable
	case "0L", "0P", "28":
		return http.StatusForbidden
	case "09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func errBadRequest(code, msg, details string) *apiError {
	return newAPIError(http.StatusBadRequest, code, msg, details, "")
}

func errUnknownColumn(table, col string) *apiError {
	return newAPIError(http.StatusBadRequest, "42703", fmt.Sprintf("column %s.%s does not exist", table, col), "", "")
}

func errUnknownTable(table string) *apiError {
	return newAPIError(http.StatusNotFound, "PGRST205",
		fmt.Sprintf("Could not find the table 'public.%s' in the schema cache", table), "", "")
}

func errSingular(n int) *apiError {
	return newAPIError(http.StatusNotAcceptable, "PGRST116", "Cannot coerce the result to a single JSON object",
		fmt.Sprintf("The result contains %d rows", n), "")
}

func errJWT(msg string) *apiError {
	return newAPIError(http.StatusUnauthorized, "PGRST301", msg, "", "")
}

package github

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	gh "github.com/google/go-github/v84/github"

	"github.com/opscontrolroom/opsd/adapters"
)

// Sentinel errors wrapped (alongside the *adapters.APIError) by the methods
// that can hit them, so callers can branch with errors.Is.
var (
	// ErrRefNotFound: a branch, tag or sha does not exist in the repository.
	ErrRefNotFound = errors.New("ref not found")
	// ErrRepoNotFound: the repository does not exist or the token cannot see
	// it (GitHub answers 404 for both).
	ErrRepoNotFound = errors.New("repository not found or not accessible with this token")
	// ErrAlreadyExists: the branch or pull request to create already exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrNoWorkflowRuns: no workflow run matched.
	ErrNoWorkflowRuns = errors.New("no workflow runs")
	// ErrRunNotFound: a dispatched workflow run could not be identified.
	ErrRunNotFound = errors.New("dispatched workflow run not found")
)

// Error codes set in adapters.APIError.Code for rate limits; other errors
// carry GitHub's first validation error code (e.g. "already_exists"), if any.
const (
	CodeRateLimited          = "rate_limited"
	CodeSecondaryRateLimited = "secondary_rate_limited"
)

// RateLimitError is GitHub's primary or secondary rate limit. GitHub answers
// it with 403 as often as 429, so unlike a bare 403 APIError it reports
// itself Temporary: the call succeeds after API.RetryAfter.
type RateLimitError struct{ API *adapters.APIError }

func (e *RateLimitError) Error() string   { return e.API.Error() }
func (e *RateLimitError) Unwrap() error   { return e.API }
func (e *RateLimitError) Temporary() bool { return true }

// translate turns go-github errors into the project's errors. Anything that is
// not a GitHub response (context cancellation, transport failures) passes
// through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var (
		rle  *gh.RateLimitError
		arle *gh.AbuseRateLimitError
		er   *gh.ErrorResponse
	)
	switch {
	case errors.As(err, &rle):
		api := apiError(rle.Response, CodeRateLimited, rle.Message)
		if d := time.Until(rle.Rate.Reset.Time); d > 0 && api.RetryAfter == 0 {
			api.RetryAfter = d
		}
		if api.Status == 0 {
			// go-github refused locally: its last response said the limit is spent.
			api.Status = http.StatusForbidden
		}
		return &RateLimitError{API: api}
	case errors.As(err, &arle):
		// GitHub: honour retry-after; else, when x-ratelimit-remaining is 0,
		// x-ratelimit-reset; else wait at least a minute. (go-github also
		// reads x-ratelimit-reset when the quota is not spent; GitHub does not
		// document that for secondary limits, so apiError decides.)
		api := apiError(arle.Response, CodeSecondaryRateLimited, arle.Message)
		if api.RetryAfter == 0 {
			api.RetryAfter = adapters.DefaultSecondaryWait
		}
		return &RateLimitError{API: api}
	case errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusTooManyRequests:
		// A 429 is a secondary limit even when go-github does not say so:
		// wait its Retry-After, else at least the minute GitHub asks for.
		api := apiError(er.Response, CodeSecondaryRateLimited, er.Message)
		if api.RetryAfter == 0 {
			api.RetryAfter = adapters.DefaultSecondaryWait
		}
		return &RateLimitError{API: api}
	case errors.As(err, &er):
		code := ""
		if len(er.Errors) > 0 {
			code = er.Errors[0].Code
		}
		msg := er.Message
		if len(er.Errors) > 0 && er.Errors[0].Message != "" {
			msg = fmt.Sprintf("%s: %s", msg, er.Errors[0].Message)
		}
		return apiError(er.Response, code, msg)
	}
	return err
}

func apiError(resp *http.Response, code, msg string) *adapters.APIError {
	e := &adapters.APIError{Adapter: Name, Code: code, Message: msg}
	if resp == nil {
		return e
	}
	e.Status = resp.StatusCode
	// X-RateLimit-Reset is on every GitHub response; it is a wait only when
	// the limit is spent. Retry-After always is.
	if resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0" {
		e.RetryAfter = adapters.RetryAfter(resp.Header, time.Now())
	}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.Path = resp.Request.URL.Path
	}
	return e
}

// statusOf returns the HTTP status of a translated error, 0 if it has none.
func statusOf(err error) int {
	var api *adapters.APIError
	if errors.As(err, &api) {
		return api.Status
	}
	return 0
}

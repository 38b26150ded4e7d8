package contracts

import (
	"errors"
	"fmt"
	"strconv"
)

// Code is a wire error code. Services answer failures with one of these
// codes (in the Nats-Service-Error-Code header of a micro response); clients
// branch on the code, never on the text.
type Code int

// The wire error-code table. Never renumber; only add.
const (
	CodeInternal         Code = 1000 // the service failed; retry may help
	CodeBadRequest       Code = 1001 // malformed or invalid request
	CodeTooLarge         Code = 1002 // payload over MaxMessageBytes
	CodeUnauthenticated  Code = 1003 // the caller is not a known principal
	CodePermissionDenied Code = 1004 // the caller may not do this
	CodeNotFound         Code = 1005 // no such object
	CodeAmbiguous        Code = 1006 // a name matches several objects
	CodeConflict         Code = 1007 // concurrent change or already exists
	CodeUnavailable      Code = 1008 // a dependency is down; retry later

	CodeTokenInvalid     Code = 2001 // the enrollment token is not one this site issued
	CodeTokenExpired     Code = 2002
	CodeTokenSpent       Code = 2003 // every use of the token is taken
	CodeTokenRevoked     Code = 2004
	CodeTokenForeignSite Code = 2005 // the token was issued by another site
	CodeBlocked          Code = 2006 // the client is blocked

	CodePolicyDenied       Code = 3001 // the client's remote tools policy does not allow the session
	CodeNotPermittedViewer Code = 3002 // neither a permitted viewer nor a local administrator of the client
	CodeConsentRefused     Code = 3003 // the logged-on user refused, or did not answer in time
	CodeClientOffline      Code = 3004 // the client is not connected
	CodeClientRefused      Code = 3005 // the agent's own check refused the session
)

var codeNames = map[Code]string{
	CodeInternal:           "internal",
	CodeBadRequest:         "bad_request",
	CodeTooLarge:           "too_large",
	CodeUnauthenticated:    "unauthenticated",
	CodePermissionDenied:   "permission_denied",
	CodeNotFound:           "not_found",
	CodeAmbiguous:          "ambiguous",
	CodeConflict:           "conflict",
	CodeUnavailable:        "unavailable",
	CodeTokenInvalid:       "token_invalid",
	CodeTokenExpired:       "token_expired",
	CodeTokenSpent:         "token_spent",
	CodeTokenRevoked:       "token_revoked",
	CodeTokenForeignSite:   "token_foreign_site",
	CodeBlocked:            "blocked",
	CodePolicyDenied:       "policy_denied",
	CodeNotPermittedViewer: "not_permitted_viewer",
	CodeConsentRefused:     "consent_refused",
	CodeClientOffline:      "client_offline",
	CodeClientRefused:      "client_refused",
}

// Codes lists the table, for documentation and tests.
func Codes() map[Code]string {
	out := make(map[Code]string, len(codeNames))
	for k, v := range codeNames {
		out[k] = v
	}
	return out
}

// String is the code's stable name.
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "code_" + strconv.Itoa(int(c))
}

// Error is a failure with a wire code.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Errorf makes an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the wire code of err, CodeInternal for errors without one.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ParseCode reads a code from its decimal form (the micro error header).
func ParseCode(s string) Code {
	n, err := strconv.Atoi(s)
	if err != nil {
		return CodeInternal
	}
	return Code(n)
}

package mgmt

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/restjson"
)

// Sentinel errors. Every error a call returns is an *Error that matches, with errors.Is, exactly
// one of the first eight, plus ErrDeadline when retrying stopped at the deadline margin; or only
// ErrDeadline when the margin was reached before the first attempt; or only context.Canceled
// when the caller gave up.
var (
	// ErrGone: 410 GoneException. The connection no longer exists (or is not established
	// yet). Never retried.
	ErrGone = errors.New("mgmt: connection gone")
	// ErrForbidden: 403 (ForbiddenException, or a signature API Gateway refuses). A missing
	// grant, the wrong endpoint or stage; API Gateway also answers it for ids that never
	// existed. Never retried.
	ErrForbidden = errors.New("mgmt: forbidden")
	// ErrTooLarge: 413 PayloadTooLargeException. Never retried.
	ErrTooLarge = errors.New("mgmt: payload too large")
	// ErrThrottled: 429 LimitExceededException (the account's rate, or the client's buffer is
	// full). Retried.
	ErrThrottled = errors.New("mgmt: throttled")
	// ErrServer: a 5xx answer. Retried.
	ErrServer = errors.New("mgmt: server error")
	// ErrUnavailable: no answer: a timeout, a refused or reset connection. Retried, except for a
	// TLS certificate that does not verify.
	ErrUnavailable = errors.New("mgmt: endpoint unavailable")
	// ErrRejected: another 4xx answer (a malformed request). Never retried.
	ErrRejected = errors.New("mgmt: request rejected")
	// ErrCredentials: the credentials provider failed. Never retried (the provider's cache
	// does its own refreshing).
	ErrCredentials = errors.New("mgmt: no credentials")

	// ErrDeadline is added to the last attempt's error when retrying stopped because no other
	// attempt could start before the context's deadline less the policy's margin, or the
	// policy's MaxAttempts was reached: the call did not give up on its own, time did. A
	// throttled post past its deadline matches both ErrThrottled and ErrDeadline.
	ErrDeadline = errors.New("mgmt: deadline margin reached")
)

// Error describes a call that failed. Its fields are safe to log: ids and API Gateway's own
// words, never the payload.
type Error struct {
	Op     string // "post", "get" or "delete"
	ConnID string
	// Status is the HTTP status of the last answer; 0 when there was none.
	Status int
	// Type is API Gateway's error type, from the X-Amzn-ErrorType header or else the body's
	// code or __type, sanitized as the SDK does (e.g. "GoneException").
	Type string
	// Message is the body's message, if any.
	Message string
	// Attempts counts the requests sent, Throttled those answered 429.
	Attempts, Throttled int
	// Deadline is true when retrying stopped at the deadline margin (or MaxAttempts).
	Deadline bool
	// byTime is true when retrying stopped because of the deadline margin (not MaxAttempts):
	// the next attempt or backoff would have run past it.
	byTime bool
	// Err is the transport, context or credentials error behind a failure without an answer.
	Err error

	kind  error // one of the sentinels, or nil when the caller's context was canceled
	final bool  // not worth retrying whatever its kind (an unreadable success answer)
}

// RetriesEndedByDeadline reports whether retrying stopped because of the context's deadline less
// the margin: no attempt could start, or the next backoff would have ended past it. Retrying may
// stop for that reason before the deadline itself (up to the backoff's cap before it): a caller
// keeping its own deadline learns here that the call was cut by time, whatever its clock says.
// MaxAttempts, a final error or a canceled context do not count.
func (e *Error) RetriesEndedByDeadline() bool { return e.byTime }

// Error returns a one-line description.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mgmt: ")
	b.WriteString(e.Op)
	b.WriteByte(' ')
	b.WriteString(e.ConnID)
	b.WriteString(": ")
	if e.kind != nil {
		b.WriteString(strings.TrimPrefix(e.kind.Error(), "mgmt: "))
	} else {
		b.WriteString("canceled")
	}
	if e.Status != 0 {
		b.WriteString(" (")
		b.WriteString(strconv.Itoa(e.Status))
		if e.Type != "" {
			b.WriteByte(' ')
			b.WriteString(e.Type)
		}
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
		b.WriteByte(')')
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	b.WriteString(" after ")
	b.WriteString(strconv.Itoa(e.Attempts))
	if e.Attempts == 1 {
		b.WriteString(" attempt")
	} else {
		b.WriteString(" attempts")
	}
	if e.Deadline && e.kind != ErrDeadline {
		b.WriteString("; ")
		b.WriteString(strings.TrimPrefix(ErrDeadline.Error(), "mgmt: "))
	}
	return b.String()
}

// Unwrap returns the sentinel, ErrDeadline when it applies, and the underlying error.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.Deadline && e.kind != ErrDeadline {
		errs = append(errs, ErrDeadline)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// retryable reports whether the failure is worth another attempt.
func (e *Error) retryable() bool {
	switch e.kind {
	case ErrThrottled, ErrServer:
		return true
	case ErrUnavailable:
		var cert *tls.CertificateVerificationError
		return !errors.As(e.Err, &cert)
	}
	return false
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 16 << 10

// apiError decodes an error answer as the SDK's restjson deserializer does: the type from the
// X-Amzn-ErrorType header, else from the JSON body's code or __type, both sanitized with the
// SDK's own restjson.SanitizeErrorCode; the message from the body. A body that is not JSON (a
// load balancer's HTML page) leaves only the header and the status to go by.
func apiError(status int, h http.Header, body []byte) (kind error, typ, msg string) {
	if v := h.Get("X-Amzn-ErrorType"); v != "" {
		typ = restjson.SanitizeErrorCode(v)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if code, m, err := restjson.GetErrorInfo(d); err == nil {
			if typ == "" {
				typ = code
			}
			msg = m
		}
	}
	return classify(status, typ), typ, msg
}

// classify maps an error type, else the status, to a sentinel. The type decides first, as in the
// SDK, which types its errors by code alone.
func classify(status int, typ string) error {
	switch strings.ToLower(typ) {
	case "goneexception":
		return ErrGone
	case "forbiddenexception", "accessdeniedexception":
		return ErrForbidden
	case "payloadtoolargeexception":
		return ErrTooLarge
	case "limitexceededexception", "throttlingexception", "toomanyrequestsexception":
		return ErrThrottled
	}
	switch {
	case status == http.StatusGone:
		return ErrGone
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status >= 500:
		return ErrServer
	}
	return ErrRejected
}

// transportKind classifies a failure without an answer: the caller's cancellation is not the
// endpoint's fault; everything else (a timeout, a reset, a refusal, a bad certificate) is.
func transportKind(parent context.Context) error {
	if errors.Is(parent.Err(), context.Canceled) {
		return nil
	}
	return ErrUnavailable
}

package rpc

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Every error Call returns matches one of these with
// errors.Is, or is an *Error from the remote handler (see IsCode).
var (
	// ErrClosed: the local endpoint was closed before or during the call.
	ErrClosed = errors.New("rpc: endpoint closed")
	// ErrUnknownPeer: the node id is not in the peer map; check --peers.
	ErrUnknownPeer = errors.New("rpc: unknown peer")
	// ErrUnreachable: the peer could not be reached after the bounded
	// retries, or the connection broke after the request was sent (the
	// outcome is then unknown). It wraps the last cause.
	ErrUnreachable = errors.New("rpc: peer unreachable")
	// ErrTimeout: the call's deadline passed before a response arrived.
	ErrTimeout = errors.New("rpc: timeout")
	// ErrUnknownMethod: the remote has no handler for the method. The
	// *Error a caller receives has Code CodeUnknownMethod and matches
	// ErrUnknownMethod with errors.Is.
	ErrUnknownMethod = errors.New("rpc: unknown method")
	// ErrVersion: the connection preamble had a wrong magic or version.
	ErrVersion = errors.New("rpc: wire version mismatch")
	// ErrMalformed: a frame was over MaxFrame, failed its checksum, or did
	// not decode. The connection that carried it is closed.
	ErrMalformed = errors.New("rpc: malformed frame")
)

// Codes the transport itself puts in Error.Code. Handlers may use any other.
const (
	CodeInternal      = "internal"       // a handler returned a non-*Error error
	CodeUnknownMethod = "unknown-method" // no handler registered
	CodeTimeout       = "timeout"        // the handler's context expired
)

// Error is an error returned by a remote handler, or by the transport for a
// call it refused. Code is meant for programs, Message for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "rpc: remote error " + e.Code
	}
	return "rpc: remote error " + e.Code + ": " + e.Message
}

// Is lets the transport codes match their sentinels, so callers can write
// errors.Is(err, ErrUnknownMethod) whichever side detected the problem.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnknownMethod:
		return e.Code == CodeUnknownMethod
	case ErrTimeout:
		return e.Code == CodeTimeout
	}
	return false
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsCode reports whether err (wrapped or not) is an *Error with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// remoteError turns a handler's error into the code and message sent back.
func remoteError(err error) (code, message string) {
	var e *Error
	switch {
	case err == nil:
		return "", ""
	case errors.As(err, &e):
		return e.Code, e.Message
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout, err.Error()
	}
	return CodeInternal, err.Error()
}

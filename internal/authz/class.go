package authz

import (
	"errors"
	"fmt"
)

// Class is what a call does, and so the least role that may make it.
type Class int

// The classes of API calls.
const (
	Public  Class = iota // _ping, version: anyone with a connection
	Read                 // inspect, list, logs, events, stats: viewer
	Operate              // run, stop, exec, attach, pull, build, file copy: operator
	Admin                // nodes, swarm, join tokens, debug: admin
)

var classNames = []string{"public", "read", "operate", "admin"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return fmt.Sprintf("class(%d)", int(c))
	}
	return classNames[c]
}

// Needs is the least role that may make a call of class c.
func (c Class) Needs() Role {
	switch c {
	case Public:
		return RoleNone
	case Read:
		return RoleViewer
	case Operate:
		return RoleOperator
	}
	return RoleAdmin
}

// Allowed reports whether id may make calls of class c.
func (id Identity) Allowed(c Class) bool { return id.Role >= c.Needs() }

// ErrDenied is what every refusal wraps; test with errors.Is.
var ErrDenied = errors.New("authorization denied")

// DeniedError is a refusal: who asked, and what they may not do, worded
// for the client: "authorization denied: alice (viewer) may not exec into
// containers".
type DeniedError struct {
	Who  Identity
	What string // "exec into containers"
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s: %s may not %s", ErrDenied, e.Who, e.What)
}

// Is makes errors.Is(err, ErrDenied) hold.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Forbidden marks the error as a permission error for errdefs (HTTP 403).
func (e *DeniedError) Forbidden() {}

// Deny is the refusal of what for id.
func Deny(id Identity, what string) error { return &DeniedError{Who: id, What: what} }

//go:build !linux

package agent

import "errors"

// mountTmpfs: task files need Linux's tmpfs.
func mountTmpfs(string) error { return errors.New("task files need Linux") }

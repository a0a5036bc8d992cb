package cli

import "runtime/debug"

// commit is GitCommit as make build sets it, or else the commit the Go
// toolchain stamped into the binary (go build in a git checkout), with
// "-dirty" when the tree had changes.
func commit() string {
	if GitCommit != "unknown" && GitCommit != "" {
		return GitCommit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return GitCommit
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return GitCommit
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

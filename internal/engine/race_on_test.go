//go:build race

package engine

// raceEnabled: the race detector grows goroutine stacks, so stack sizes
// measured under it say nothing about a normal build.
const raceEnabled = true

//go:build chaos && race

package chaos_test

// raceEnabled: the agents are built with -race too.
const raceEnabled = true

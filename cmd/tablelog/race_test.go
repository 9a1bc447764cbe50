//go:build race

package main

// The end-to-end binary is built with -race when the tests are: it shares
// the build cache of the test binary's dependencies and checks the CLI's
// goroutines too.
func init() { raceBuild = true }

//go:build tools

// Pins the JobSet controller (its main package is the module root) so `go build sigs.k8s.io/jobset` resolves here.
package tools

import _ "sigs.k8s.io/jobset"

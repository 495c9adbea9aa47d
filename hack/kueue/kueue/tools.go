//go:build tools

// Pins the Kueue manager so `go build sigs.k8s.io/kueue/cmd/kueue` resolves from this module.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"

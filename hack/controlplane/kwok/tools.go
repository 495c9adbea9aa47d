//go:build tools

// Pins the kwok controller so `go build sigs.k8s.io/kwok/cmd/kwok` resolves from this module.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"

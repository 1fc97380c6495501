//go:build tools

// Package tools pins what this module builds: the prometheus-operator command, and the Prometheus server of
// the version prometheus-operator itself depends on (Debian's Prometheus has no kubernetes_sd).
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)

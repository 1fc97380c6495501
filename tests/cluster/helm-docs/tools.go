//go:build tools

// Package tools pins helm-docs (the chart README generator, `make chart-docs`).
package tools

import _ "github.com/norwoodj/helm-docs/cmd/helm-docs"

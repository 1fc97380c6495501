// Command kstatus computes the kstatus status of one Kubernetes object, with the real library
// (sigs.k8s.io/cli-utils/pkg/kstatus/status, as Flux and kpt use it). The object is read from
// stdin as YAML or JSON; the result is printed as one JSON line:
//
//	{"status":"Current","message":"Resource is current"}
//
// status is one of InProgress, Failed, Current, Terminating, NotFound, Unknown.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type output struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < object.yaml (YAML or JSON on stdin)")
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	raw, err := yaml.YAMLToJSON(in)
	if err != nil {
		fail("parsing the object: %v", err)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(raw); err != nil {
		fail("parsing the object: %v", err)
	}
	res, err := status.Compute(&obj)
	if err != nil {
		fail("kstatus: %v", err)
	}
	out, err := json.Marshal(output{Status: res.Status.String(), Message: res.Message})
	if err != nil {
		fail("%v", err)
	}
	fmt.Println(string(out))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}

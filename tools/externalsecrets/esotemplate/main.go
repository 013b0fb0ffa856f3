// esotemplate renders an ExternalSecret's target template with External Secrets Operator's own engine
// (pkg/template/v2), as its controller does: reads {"template": {key: text}, "data": {key: value}} on stdin,
// prints the Secret's data as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	esapi "github.com/external-secrets/external-secrets/apis/externalsecrets/v1"
	template "github.com/external-secrets/external-secrets/pkg/template/v2"
	corev1 "k8s.io/api/core/v1"
)

type request struct {
	Template map[string]string `json:"template"`
	Data     map[string]string `json:"data"`
}

func main() {
	var in request
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "esotemplate:", err)
		os.Exit(2)
	}
	tpl, data := map[string][]byte{}, map[string][]byte{}
	for k, v := range in.Template {
		tpl[k] = []byte(v)
	}
	for k, v := range in.Data {
		data[k] = []byte(v)
	}
	secret := &corev1.Secret{}
	if err := template.Execute(tpl, data, esapi.TemplateScopeValues, esapi.TemplateTargetData, secret); err != nil {
		fmt.Fprintln(os.Stderr, "esotemplate:", err)
		os.Exit(1)
	}
	out := map[string]string{}
	for k, v := range secret.Data {
		out[k] = string(v)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}

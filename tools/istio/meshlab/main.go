// Command meshlab runs istiod's own code, offline, for endpointgen's data-plane tests.
//
//	meshlab inject   --operator IOP [--mesh FILE]... < objects.yaml     the pods istiod's injection webhook would make
//	meshlab validate < objects.yaml                                      istiod's validating admission webhook, in process
//	meshlab serve    --operator IOP [--mesh FILE]... --objects FILE --listen ADDR
//	                                                                     istiod's xDS server for these objects
//
// IOP is an IstioOperator (the control plane install); it is rendered with istioctl's own chart renderer
// (operator/pkg/render), so the injection templates, their values, the webhook selectors and the mesh
// config are the chart's. Each --mesh file is a MeshConfig overlay applied in order, as the AKS add-on
// merges its shared ConfigMap. Objects are Kubernetes YAML documents; serve gives the Istio kinds to
// istiod's config store and the others (Namespaces, Services, Pods, EndpointSlices, Secrets) to its
// Kubernetes service registry, through istiod's fake discovery server (pilot/test/xds), which runs the same
// registries and xDS generators as pilot-discovery.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/operator/pkg/manifest"
	"istio.io/istio/operator/pkg/render"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/kube/inject"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/security"
	"istio.io/istio/pkg/webhooks/validation/server"
	"istio.io/istio/security/pkg/server/ca/authenticate/kubeauth"
)

type meshFiles []string

func (m *meshFiles) String() string     { return strings.Join(*m, ",") }
func (m *meshFiles) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: meshlab inject|validate|serve [flags]"))
	}
	logs := istiolog.DefaultOptions() // istiod's logs to stderr: stdout carries the commands' results
	logs.OutputPaths, logs.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	if err := istiolog.Configure(logs); err != nil {
		fail(err)
	}
	var err error
	switch os.Args[1] {
	case "inject":
		err = runInject(os.Args[2:])
	case "validate":
		err = runValidate(os.Stdin, os.Stdout)
	case "serve":
		err = runServe(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "meshlab:", err)
	os.Exit(1)
}

// install is what an IstioOperator renders to: the injection config, its values and webhooks, and the mesh config.
type install struct {
	revision  string
	templates inject.Templates
	values    inject.ValuesConfig
	webhooks  []admissionregistrationv1.MutatingWebhook
	mesh      *meshconfig.MeshConfig
}

func loadInstall(operator string, overlays []string) (*install, error) {
	sets, merged, err := render.GenerateManifest([]string{operator}, nil, false, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %v", operator, err)
	}
	revision := merged.GetPathString("spec.revision")
	var out install
	out.revision = revision
	var meshYAML string
	for _, set := range sets {
		for _, m := range set.Manifests {
			if err := out.take(m, &meshYAML); err != nil {
				return nil, err
			}
		}
	}
	if out.templates == nil {
		return nil, fmt.Errorf("%s renders no istio-sidecar-injector ConfigMap", operator)
	}
	if out.mesh, err = mesh.ApplyMeshConfigDefaults(meshYAML); err != nil {
		return nil, fmt.Errorf("the chart's mesh config: %v", err)
	}
	for _, overlay := range overlays {
		text, err := os.ReadFile(overlay)
		if err != nil {
			return nil, err
		}
		if out.mesh, err = mesh.ApplyMeshConfig(string(text), out.mesh); err != nil {
			return nil, fmt.Errorf("mesh config %s: %v", overlay, err)
		}
	}
	return &out, nil
}

// installFlags adds --operator and --mesh to a command; the function it returns loads the install after Parse.
func installFlags(flags *flag.FlagSet) func() (*install, error) {
	operator := flags.String("operator", "", "IstioOperator file")
	var overlays meshFiles
	flags.Var(&overlays, "mesh", "MeshConfig overlay (repeatable)")
	return func() (*install, error) { return loadInstall(*operator, overlays) }
}

func (in *install) take(m manifest.Manifest, meshYAML *string) error {
	switch m.GetKind() {
	case "ConfigMap":
		data, _, _ := unstructured.NestedStringMap(m.Object, "data")
		switch {
		case strings.HasPrefix(m.GetName(), "istio-sidecar-injector"):
			config, err := inject.UnmarshalConfig([]byte(data["config"]))
			if err != nil {
				return fmt.Errorf("injector config: %v", err)
			}
			if in.templates, err = inject.ParseTemplates(config.RawTemplates); err != nil {
				return fmt.Errorf("injection templates: %v", err)
			}
			if in.values, err = inject.NewValuesConfig(data["values"]); err != nil {
				return fmt.Errorf("injection values: %v", err)
			}
		case m.GetName() == "istio" || strings.HasPrefix(m.GetName(), "istio-"+in.revision):
			if text, ok := data["mesh"]; ok {
				*meshYAML = text
			}
		}
	case "MutatingWebhookConfiguration":
		var config admissionregistrationv1.MutatingWebhookConfiguration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.Object, &config); err != nil {
			return err
		}
		if !strings.HasPrefix(config.Name, "istio-revision-tag") {
			in.webhooks = append(in.webhooks, config.Webhooks...)
		}
	}
	return nil
}

// selects tells whether one of the install's injection webhooks matches a pod in a namespace.
func (in *install) selects(namespace map[string]string, pod map[string]string) (bool, error) {
	for _, hook := range in.webhooks {
		ns, err := selector(hook.NamespaceSelector)
		if err != nil {
			return false, err
		}
		obj, err := selector(hook.ObjectSelector)
		if err != nil {
			return false, err
		}
		if ns.Matches(labels.Set(namespace)) && obj.Matches(labels.Set(pod)) {
			return true, nil
		}
	}
	return false, nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// documents splits a YAML stream into its non-empty documents, each as JSON.
func documents(r io.Reader) ([][]byte, error) {
	text, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, doc := range strings.Split("\n"+string(text), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, err
		}
		if string(js) != "null" {
			out = append(out, js)
		}
	}
	return out, nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
}

func isIstio(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	return strings.HasSuffix(group, ".istio.io")
}

// runInject prints, for each Deployment of the input, the pod template istiod's injection webhook would
// make (or the template unchanged when no webhook selects it), as one JSON line:
// {"namespace", "name", "injected", "template"}. Namespaces of the input give the namespace labels.
func runInject(args []string) error {
	flags := flag.NewFlagSet("inject", flag.ExitOnError)
	load := installFlags(flags)
	_ = flags.Parse(args)
	in, err := load()
	if err != nil {
		return err
	}
	docs, err := documents(os.Stdin)
	if err != nil {
		return err
	}
	namespaces := map[string]map[string]string{}
	for _, doc := range docs {
		var meta typeMeta
		if err := json.Unmarshal(doc, &meta); err != nil {
			return err
		}
		if meta.Kind == "Namespace" {
			namespaces[meta.Metadata.Name] = withName(meta.Metadata.Labels, meta.Metadata.Name)
		}
	}
	out := json.NewEncoder(os.Stdout)
	for _, doc := range docs {
		var meta typeMeta
		_ = json.Unmarshal(doc, &meta)
		if meta.Kind != "Deployment" {
			continue
		}
		obj, err := inject.FromRawToObject(doc)
		if err != nil {
			return fmt.Errorf("%s/%s: %v", meta.Metadata.Namespace, meta.Metadata.Name, err)
		}
		podLabels := deploymentPodLabels(doc)
		selected, err := in.selects(namespaces[meta.Metadata.Namespace], podLabels)
		if err != nil {
			return err
		}
		result := obj
		if selected {
			var warnings []string
			injected, err := inject.IntoObject(nil, in.templates, in.values, in.revision, in.mesh, obj,
				func(w string) { warnings = append(warnings, w) })
			if err != nil {
				return fmt.Errorf("injecting %s/%s: %v", meta.Metadata.Namespace, meta.Metadata.Name, err)
			}
			for _, w := range warnings {
				fmt.Fprintf(os.Stderr, "meshlab: %s/%s: %s\n", meta.Metadata.Namespace, meta.Metadata.Name, w)
			}
			result = injected.(runtime.Object)
		}
		raw, err := json.Marshal(result)
		if err != nil {
			return err
		}
		var deployment struct {
			Spec struct {
				Template json.RawMessage `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(raw, &deployment); err != nil {
			return err
		}
		if err := out.Encode(map[string]any{
			"namespace": meta.Metadata.Namespace, "name": meta.Metadata.Name,
			"injected": selected, "template": deployment.Spec.Template,
		}); err != nil {
			return err
		}
	}
	return nil
}

func withName(l map[string]string, name string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range l {
		out[k] = v
	}
	return out
}

func deploymentPodLabels(doc []byte) map[string]string {
	var d struct {
		Spec struct {
			Template struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
			} `json:"template"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(doc, &d)
	return d.Spec.Template.Metadata.Labels
}

// runValidate sends every Istio object of the input to istiod's validating webhook handler (in process,
// as the API server would on create) and prints one JSON line per object: {kind, namespace, name, allowed,
// message, warnings}. Objects of other groups are skipped, as the webhook's rules skip them.
func runValidate(r io.Reader, w io.Writer) error {
	mux := http.NewServeMux()
	if _, err := server.New(server.Options{Schemas: collections.PilotGatewayAPI(), DomainSuffix: "cluster.local",
		Mux: mux}); err != nil {
		return err
	}
	docs, err := documents(r)
	if err != nil {
		return err
	}
	out := json.NewEncoder(w)
	for _, doc := range docs {
		var meta typeMeta
		if err := json.Unmarshal(doc, &meta); err != nil {
			return err
		}
		if !isIstio(meta.APIVersion) {
			continue
		}
		review := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: "endpointgen", Operation: admissionv1.Create, Namespace: meta.Metadata.Namespace,
				Name: meta.Metadata.Name, Kind: metav1.GroupVersionKind{Kind: meta.Kind},
				Object: runtime.RawExtension{Raw: doc},
			},
		}
		body, _ := json.Marshal(review)
		request := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		request.Header.Set("Content-Type", "application/json")
		recorder := httptest.NewRecorder()
		mux.ServeHTTP(recorder, request)
		var answer admissionv1.AdmissionReview
		if err := json.Unmarshal(recorder.Body.Bytes(), &answer); err != nil || answer.Response == nil {
			return fmt.Errorf("webhook answered %d: %s", recorder.Code, recorder.Body.String())
		}
		message := ""
		if answer.Response.Result != nil {
			message = answer.Response.Result.Message
		}
		warnings := answer.Response.Warnings
		if warnings == nil {
			warnings = []string{}
		}
		if err := out.Encode(map[string]any{
			"kind": meta.Kind, "namespace": meta.Metadata.Namespace, "name": meta.Metadata.Name,
			"allowed": answer.Response.Allowed, "message": message, "warnings": warnings,
		}); err != nil {
			return err
		}
	}
	return nil
}

// runServe starts istiod's discovery server on the objects and serves xDS (plaintext gRPC, as istiod's
// port 15010) until SIGTERM or SIGINT. It prints "ready ADDR" once the first push context is built.
func runServe(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	load := installFlags(flags)
	objects := flags.String("objects", "", "Kubernetes and Istio objects (YAML)")
	listen := flags.String("listen", "127.0.0.1:15010", "xDS address")
	debug := flags.String("debug", "", "address for istiod's debug endpoints (/debug/...), off when empty")
	kubeVersion := flags.String("kubernetes-minor", "", "Kubernetes minor version the fake API server reports")
	certFile := flags.String("tls-cert", "", "serve xDS over TLS (as istiod's port 15012) with this certificate")
	keyFile := flags.String("tls-key", "", "the certificate's private key")
	_ = flags.Parse(args)
	in, err := load()
	if err != nil {
		return err
	}
	file, err := os.Open(*objects)
	if err != nil {
		return err
	}
	docs, err := documents(file)
	file.Close()
	if err != nil {
		return err
	}
	var kube, istio []string
	for _, doc := range docs {
		var meta typeMeta
		if err := json.Unmarshal(doc, &meta); err != nil {
			return err
		}
		text, _ := yaml.JSONToYAML(doc)
		if isIstio(meta.APIVersion) {
			istio = append(istio, string(text))
		} else {
			kube = append(kube, string(text))
		}
	}
	if err := rejectInvalid(strings.Join(istio, "\n---\n")); err != nil {
		return err
	}
	t := newFailer()
	defer t.cleanup()
	var serveErr error
	fake := func() (s *xds.FakeDiscoveryServer) {
		defer func() {
			if r := recover(); r != nil {
				serveErr = fmt.Errorf("%v", r)
			}
		}()
		return xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
			KubernetesObjectString:     strings.Join(kube, "\n---\n"),
			ConfigString:               strings.Join(istio, "\n---\n"),
			MeshConfig:                 in.mesh,
			KubernetesVersion:          *kubeVersion,
			DisableSecretAuthorization: true,
			ListenerBuilder:            func() (net.Listener, error) { return listener(*listen, *certFile, *keyFile) },
		})
	}()
	if serveErr != nil {
		return serveErr
	}
	authenticateAgents(fake)
	if *debug != "" {
		debugListener, err := net.Listen("tcp", *debug)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/", fake.DiscoveryDebug)
		mux.HandleFunc("/harness/endpointslices", updateEndpointSlice(fake))
		go func() { _ = http.Serve(debugListener, mux) }()
	}
	fmt.Printf("ready %s\n", fake.Listener.Addr())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	return nil
}

// TokenPrefix starts the service account tokens the harness's kubelet writes: TokenPrefix + "NS/SA/POD".
const TokenPrefix = "endpointgen-harness-token/"

// authenticateAgents makes istiod authenticate xDS clients as it does on a cluster: istiod's own Kubernetes
// JWT authenticator, whose TokenReview the fake API server answers for the harness's tokens (as the real
// one answers for a pod's projected service account token). Without it, istiod refuses gateways their
// TLS credentials ("not authorized to receive credscontroller").
func authenticateAgents(fake *xds.FakeDiscoveryServer) {
	client := fake.KubeClient().Kube().(*kubefake.Clientset)
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		out := review.DeepCopy()
		parts := strings.Split(strings.TrimPrefix(review.Spec.Token, TokenPrefix), "/")
		if !strings.HasPrefix(review.Spec.Token, TokenPrefix) || len(parts) != 3 {
			out.Status = authenticationv1.TokenReviewStatus{Authenticated: false, Error: "unknown token"}
			return true, out, nil
		}
		out.Status = authenticationv1.TokenReviewStatus{
			Authenticated: true, Audiences: review.Spec.Audiences,
			User: authenticationv1.UserInfo{
				Username: fmt.Sprintf("system:serviceaccount:%s:%s", parts[0], parts[1]),
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + parts[0], "system:authenticated"},
				Extra:    map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {parts[2]}},
			},
		}
		return true, out, nil
	})
	fake.Discovery.Authenticators = []security.Authenticator{
		kubeauth.NewKubeJWTAuthenticator(fake.Env().Watcher, client, constants.DefaultClusterName, nil, nil),
	}
}

// updateEndpointSlice takes a PUT of one EndpointSlice (JSON) and updates it in the fake API server, as the
// EndpointSlice controller does when a pod starts terminating; istiod's informers see it and push EDS.
func updateEndpointSlice(fake *xds.FakeDiscoveryServer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "PUT an EndpointSlice", http.StatusMethodNotAllowed)
			return
		}
		var slice discoveryv1.EndpointSlice
		if err := json.NewDecoder(r.Body).Decode(&slice); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		client := fake.KubeClient().Kube()
		if _, err := client.DiscoveryV1().EndpointSlices(slice.Namespace).Update(r.Context(), &slice,
			metav1.UpdateOptions{}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "updated %s/%s\n", slice.Namespace, slice.Name)
	}
}

// listener is a TCP listener, TLS (ALPN h2, as gRPC clients require) when a certificate is given.
func listener(address, certFile, keyFile string) (net.Listener, error) {
	l, err := net.Listen("tcp", address)
	if err != nil || certFile == "" {
		return l, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"},
		MinVersion: tls.VersionTLS12}), nil
}

// rejectInvalid refuses to serve objects istiod's admission webhook would have refused.
func rejectInvalid(istio string) error {
	var out bytes.Buffer
	if err := runValidate(strings.NewReader(istio), &out); err != nil {
		return err
	}
	var refused []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var verdict struct {
			Kind, Namespace, Name, Message string
			Allowed                        bool
		}
		_ = json.Unmarshal([]byte(line), &verdict)
		if !verdict.Allowed {
			refused = append(refused, fmt.Sprintf("%s %s/%s: %s", verdict.Kind, verdict.Namespace, verdict.Name,
				verdict.Message))
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return fmt.Errorf("istiod's webhook refuses:\n  %s", strings.Join(refused, "\n  "))
	}
	return nil
}

// failer is the test.Failer istiod's fake servers want: failures end the process, cleanups run at exit.
type failer struct {
	mu       sync.Mutex
	cleanups []func()
	dir      string
}

func newFailer() *failer { return &failer{} }

func (f *failer) Fail()                        { f.FailNow() }
func (f *failer) FailNow()                     { panic("meshlab: istiod's fake server failed") }
func (f *failer) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (f *failer) Fatalf(s string, args ...any) { panic(fmt.Sprintf(s, args...)) }
func (f *failer) Log(args ...any)              { fmt.Fprintln(os.Stderr, args...) }
func (f *failer) Logf(s string, args ...any)   { fmt.Fprintf(os.Stderr, s+"\n", args...) }
func (f *failer) Helper()                      {}
func (f *failer) Skip(args ...any)             { f.Fatal(args...) }
func (f *failer) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *failer) TempDir() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir == "" {
		f.dir, _ = os.MkdirTemp("", "meshlab-")
	}
	dir, _ := os.MkdirTemp(f.dir, "t")
	return dir
}

func (f *failer) cleanup() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	if f.dir != "" {
		_ = os.RemoveAll(filepath.Clean(f.dir))
	}
}

// Command helm-render renders a Helm chart the way `helm template` does, and
// validates its values against values.schema.json the way `helm install` and
// `helm lint` do. It stands in for `helm template` / `helm lint`, which cannot
// run where Doorwatch is built and tested (no helm binary, and no registry to
// fetch one from: only Debian's and npm's packages are reachable).
//
// It is built OFFLINE from Debian's packages, in GOPATH mode:
//
//	apt-get install golang-go golang-github-masterminds-sprig-dev \
//	  golang-k8s-sigs-yaml-dev golang-github-xeipuuv-gojsonschema-dev
//	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off go build -o helm-render ./test/helm-render
//
// (test/helpers/helm.ts and scripts/render-manifests.sh do exactly that.) In
// GOPATH mode sprig is imported without its /v3 suffix: Go resolves its own
// /v3 imports by "minimal module compatibility".
//
// What it implements, each as Helm 3 does it (pkg/engine, pkg/chartutil,
// pkg/releaseutil, pkg/strvals):
//   - one template set holding every file under templates/ (named
//     "<chart>/templates/<file>"), so `define`s in _*.tpl are shared; files
//     whose name starts with "_" are not emitted; NOTES.txt is rendered (its
//     errors count) but printed only with --notes;
//   - the functions: sprig's (less env and expandenv, as Helm removes them),
//     toYaml, fromYaml, fromYamlArray, toJson, fromJson, fromJsonArray,
//     include, tpl, required, fail, lookup (always an empty map, as in
//     `helm template` without a cluster);
//   - missingkey=zero and "<no value>" erased from the output;
//   - .Values: values.yaml coalesced with each -f file and then each --set /
//     --set-json, in order: maps merge deeply, lists and scalars replace, a
//     null removes the key. Numbers read from YAML are float64, as in Helm
//     (sigs.k8s.io/yaml goes through JSON), so a template that prints a big
//     number without `int` fails here as it would there (1e+06);
//   - .Release (Name, Namespace, Service, IsInstall, IsUpgrade, Revision),
//     .Chart (Chart.yaml), .Capabilities (KubeVersion, APIVersions.Has,
//     HelmVersion), .Template (Name, BasePath);
//   - Chart.yaml's kubeVersion checked against --kube-version;
//   - values.schema.json checked with gojsonschema, the validator Helm 3 used
//     up to 3.17, with Helm's message layout;
//   - output: CRDs first (--include-crds), then every document sorted by
//     Helm's install order (kind, then file path, then position), each as
//     "---\n# Source: <chart>/templates/<file>\n<document>\n". Every document
//     must parse as YAML (Helm's "YAML parse error on ...").
//
// Exit status: 0 rendered, 1 any error (the message on stderr, like Helm's).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

// ---------- command line ----------

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type options struct {
	chartDir       string
	releaseName    string
	namespace      string
	releaseService string
	kubeVersion    string
	apiVersions    multi
	valueFiles     multi
	sets           multi
	setJSON        multi
	setString      multi
	includeCrds    bool
	isUpgrade      bool
	notes          bool
	valuesOnly     bool
}

const usage = `usage: helm-render [flags] CHART_DIR
  --release-name NAME        .Release.Name (default "doorwatch")
  -n, --namespace NS         .Release.Namespace (default "default")
  --release-service NAME     .Release.Service (default "Helm")
  --kube-version vX.Y.Z      .Capabilities.KubeVersion (default "v1.30.0")
  --api-versions G/V[/Kind]  add to .Capabilities.APIVersions (repeatable)
  -f, --values FILE          a values file (repeatable, later wins)
  --set K=V[,K=V]            as helm --set (repeatable)
  --set-string K=V           as helm --set-string (repeatable)
  --set-json K=JSON          as helm --set-json (repeatable)
  --include-crds             print crds/ first, as helm template --include-crds
  --is-upgrade               .Release.IsUpgrade true (IsInstall false)
  --notes                    print the rendered NOTES.txt last
  --values-only              print the coalesced values as JSON (after schema validation) and stop
`

func parseArgs(args []string) (*options, error) {
	o := &options{releaseName: "doorwatch", namespace: "default", releaseService: "Helm", kubeVersion: "v1.30.0"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "-") {
			if o.chartDir != "" {
				return nil, fmt.Errorf("more than one chart directory: %q and %q", o.chartDir, a)
			}
			o.chartDir = a
			continue
		}
		next := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch name {
		case "--include-crds":
			o.includeCrds = true
		case "--is-upgrade":
			o.isUpgrade = true
		case "--notes":
			o.notes = true
		case "--values-only":
			o.valuesOnly = true
		case "-h", "--help":
			fmt.Print(usage)
			os.Exit(0)
		case "--release-name", "-n", "--namespace", "--release-service", "--kube-version", "--api-versions", "-a",
			"-f", "--values", "--set", "--set-string", "--set-json":
			if v, err = next(); err != nil {
				return nil, err
			}
			switch name {
			case "--release-name":
				o.releaseName = v
			case "-n", "--namespace":
				o.namespace = v
			case "--release-service":
				o.releaseService = v
			case "--kube-version":
				o.kubeVersion = v
			case "--api-versions", "-a":
				o.apiVersions = append(o.apiVersions, strings.Split(v, ",")...)
			case "-f", "--values":
				o.valueFiles = append(o.valueFiles, v)
			case "--set":
				o.sets = append(o.sets, v)
			case "--set-string":
				o.setString = append(o.setString, v)
			case "--set-json":
				o.setJSON = append(o.setJSON, v)
			}
		default:
			return nil, fmt.Errorf("unknown flag %s\n%s", name, usage)
		}
	}
	if o.chartDir == "" {
		return nil, errors.New("no chart directory given\n" + usage)
	}
	return o, nil
}

// ---------- values ----------

func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if out == nil {
		out = map[string]interface{}{}
	}
	return out, nil
}

// merge puts src over dst (Helm's CoalesceTables): maps merge deeply, anything else replaces. With
// deleteNulls (user values over the chart's defaults) a nil in src deletes the key; without it (one layer of
// user values over another) the nil is kept, so that it can still delete the default.
func merge(dst, src map[string]interface{}, deleteNulls bool) map[string]interface{} {
	if dst == nil {
		dst = map[string]interface{}{}
	}
	for k, sv := range src {
		if sv == nil && deleteNulls {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = merge(dm, sm, deleteNulls)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

// deepCopy through JSON, so defaults are never aliased by user values.
func deepCopy(m map[string]interface{}) map[string]interface{} {
	b, _ := json.Marshal(m)
	out := map[string]interface{}{}
	_ = json.Unmarshal(b, &out)
	return out
}

var indexRe = regexp.MustCompile(`^([^\[\]]*)((?:\[\d+\])+)$`)

// splitUnescaped splits s on sep, honouring backslash escapes (helm's strvals).
func splitUnescaped(s string, sep rune) []string {
	var parts []string
	var cur strings.Builder
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == sep:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, cur.String())
}

// typedValue turns a --set value into what Helm's strvals makes of it.
func typedValue(s string) interface{} {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if s == "0" || (len(s) > 0 && s[0] != '0' && !strings.HasPrefix(s, "-0")) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// setPath sets value at a dotted key path with optional [n] indexes.
func setPath(root map[string]interface{}, key string, value interface{}) error {
	segs := splitDots(key)
	var cur interface{} = root
	for i, seg := range segs {
		last := i == len(segs)-1
		name, idxs := seg, []int(nil)
		if m := indexRe.FindStringSubmatch(seg); m != nil {
			name = m[1]
			for _, s := range regexp.MustCompile(`\d+`).FindAllString(m[2], -1) {
				n, _ := strconv.Atoi(s)
				idxs = append(idxs, n)
			}
		}
		parent, ok := cur.(map[string]interface{})
		if !ok {
			return fmt.Errorf("key %q: %q is not a map", key, strings.Join(segs[:i], "."))
		}
		if len(idxs) == 0 {
			if last {
				parent[name] = value
				return nil
			}
			next, ok := parent[name].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				parent[name] = next
			}
			cur = next
			continue
		}
		if len(idxs) > 1 {
			return fmt.Errorf("key %q: nested list indexes are not supported; use --set-json", key)
		}
		n := idxs[0]
		list, _ := parent[name].([]interface{})
		for len(list) <= n {
			list = append(list, nil)
		}
		parent[name] = list
		if last {
			list[n] = value
			return nil
		}
		next, ok := list[n].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			list[n] = next
		}
		cur = next
	}
	return nil
}

func splitDots(key string) []string { return splitUnescaped(key, '.') }

func applySets(vals map[string]interface{}, o *options) error {
	// --set types its values as Helm's strvals does; --set-string keeps them strings.
	keepString := func(v string) interface{} { return v }
	for _, set := range []struct {
		flag  string
		exprs []string
		typed func(string) interface{}
	}{{"--set", o.sets, typedValue}, {"--set-string", o.setString, keepString}} {
		for _, s := range set.exprs {
			for _, kv := range splitUnescaped(s, ',') {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("%s %q: expected key=value", set.flag, kv)
				}
				if err := setPath(vals, k, set.typed(v)); err != nil {
					return err
				}
			}
		}
	}
	for _, s := range o.setJSON {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("--set-json %q: expected key=json", s)
		}
		var parsed interface{}
		if err := json.Unmarshal([]byte(v), &parsed); err != nil {
			return fmt.Errorf("--set-json %q: %w", s, err)
		}
		if err := setPath(vals, k, parsed); err != nil {
			return err
		}
	}
	return nil
}

// userValues: -f files then --set*, coalesced in order (later wins), nulls kept
// so that they can delete defaults.
func userValues(o *options) (map[string]interface{}, error) {
	user := map[string]interface{}{}
	for _, f := range o.valueFiles {
		m, err := readYAMLMap(f)
		if err != nil {
			return nil, err
		}
		user = merge(user, m, false)
	}
	if err := applySets(user, o); err != nil {
		return nil, err
	}
	return user, nil
}

// ---------- schema ----------

func validateSchema(chartName, schemaFile string, values map[string]interface{}) error {
	raw, err := os.ReadFile(schemaFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	schemaJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", schemaFile, err)
	}
	valuesJSON, err := json.Marshal(values)
	if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schemaJSON), gojsonschema.NewBytesLoader(valuesJSON))
	if err != nil {
		return fmt.Errorf("%s: %w", schemaFile, err)
	}
	if res.Valid() {
		return nil
	}
	var sb strings.Builder
	for _, e := range res.Errors() {
		fmt.Fprintf(&sb, "- %s\n", e)
	}
	return fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", chartName, sb.String())
}

// ---------- capabilities ----------

type versionSet []string

// Has is .Capabilities.APIVersions.Has: "group/version" or "group/version/Kind".
func (v versionSet) Has(s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}

type kubeVersion struct {
	Version, Major, Minor, GitVersion string
}

func (k kubeVersion) String() string { return k.Version }

type helmVersion struct{ Version, GitCommit, GitTreeState, GoVersion string }

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions versionSet
	HelmVersion helmVersion
}

// Built-in group/versions of a v1.25+ API server (what Helm's default set has).
var defaultAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1", "apps/v1",
	"authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1", "autoscaling/v2", "batch/v1",
	"certificates.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1",
	"flowcontrol.apiserver.k8s.io/v1beta3", "networking.k8s.io/v1", "node.k8s.io/v1", "policy/v1",
	"rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

func parseKubeVersion(v string) (kubeVersion, error) {
	m := regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)$`).FindStringSubmatch(v)
	if m == nil {
		return kubeVersion{}, fmt.Errorf("--kube-version %q: expected vMAJOR.MINOR.PATCH", v)
	}
	full := fmt.Sprintf("v%s.%s.%s", m[1], m[2], m[3])
	return kubeVersion{Version: full, Major: m[1], Minor: m[2], GitVersion: full}, nil
}

// ---------- engine ----------

const (
	errStart = "HELM_ERR_START"
	errEnd   = "HELM_ERR_END"
)

func wrapErr(msg string) string { return errStart + msg + errEnd }

func toYAML(v interface{}) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

// fromText makes Helm's fromYaml/fromJson and fromYamlArray/fromJsonArray out of one decoder: a map (or a
// list) decoded from s, or, when s does not decode, the error in place of the value (map["Error"], or the
// list's only item), as Helm does.
func fromText(unmarshal func([]byte, interface{}) error) (func(string) map[string]interface{}, func(string) []interface{}) {
	toMap := func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	toList := func(s string) []interface{} {
		a := []interface{}{}
		if err := unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	return toMap, toList
}

func toJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func baseFuncs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"], f["fromYamlArray"] = fromText(func(b []byte, v interface{}) error { return yaml.Unmarshal(b, v) })
	f["toJson"] = toJSON
	f["fromJson"], f["fromJsonArray"] = fromText(json.Unmarshal)
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(wrapErr(msg))
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(wrapErr(msg))
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(wrapErr(msg)) }
	// `helm template` has no cluster: lookup finds nothing.
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	f["include"] = func(string, interface{}) (string, error) { return "", errors.New("not initialised") }
	f["tpl"] = func(string, interface{}) (string, error) { return "", errors.New("not initialised") }
	return f
}

const recursionMax = 1000

func bindIncludeTpl(t *template.Template, depth map[string]int) {
	t.Funcs(template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			if depth[name] > recursionMax {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			depth[name]++
			defer func() { depth[name]-- }()
			var sb strings.Builder
			err := t.ExecuteTemplate(&sb, name, data)
			return sb.String(), err
		},
		"tpl": func(text string, data interface{}) (string, error) {
			c, err := t.Clone()
			if err != nil {
				return "", fmt.Errorf("cannot clone template: %w", err)
			}
			c.Option("missingkey=zero")
			bindIncludeTpl(c, depth)
			c, err = c.New(t.Name()).Parse(text)
			if err != nil {
				return "", fmt.Errorf("cannot parse template %q: %w", text, err)
			}
			var sb strings.Builder
			if err := c.Execute(&sb, data); err != nil {
				return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
			}
			return strings.ReplaceAll(sb.String(), "<no value>", ""), nil
		},
	})
}

var execErrRe = regexp.MustCompile(`^template: (\S+?):(\d+):(\d+): executing "[^"]*" at <[^>]*>: error calling \w+: `)

// cleanExecErr turns Go's template error into Helm's "execution error at (file:line:col): msg".
func cleanExecErr(filename string, err error) error {
	msg := err.Error()
	if i, j := strings.Index(msg, errStart), strings.Index(msg, errEnd); i >= 0 && j > i {
		loc := filename
		if m := regexp.MustCompile(`template: (\S+?:\d+:\d+):`).FindStringSubmatch(msg); m != nil {
			loc = m[1]
		}
		return fmt.Errorf("execution error at (%s): %s", loc, msg[i+len(errStart):j])
	}
	if m := execErrRe.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("template: %s:%s:%s: %s", m[1], m[2], m[3], msg[len(m[0]):])
	}
	return fmt.Errorf("render error in %q: %s", filename, msg)
}

type chartFile struct {
	name    string // "<chart>/templates/x.yaml"
	content string
}

// sortTemplates: Helm's order for parsing and executing (deeper paths first, then reverse name).
func sortTemplates(names []string) []string {
	sort.SliceStable(names, func(i, j int) bool {
		ci, cj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if ci == cj {
			return names[i] > names[j]
		}
		return ci > cj
	})
	return names
}

func render(chartName string, files []chartFile, top map[string]interface{}) (map[string]string, error) {
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	t.Funcs(baseFuncs())
	bindIncludeTpl(t, map[string]int{})
	byName := map[string]string{}
	var names []string
	for _, f := range files {
		byName[f.name] = f.content
		names = append(names, f.name)
	}
	names = sortTemplates(names)
	for _, n := range names {
		if _, err := t.New(n).Parse(byName[n]); err != nil {
			return nil, fmt.Errorf("parse error in %q: %w", n, err)
		}
	}
	out := map[string]string{}
	for _, n := range names {
		if strings.HasPrefix(path.Base(n), "_") {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": n, "BasePath": chartName + "/templates"}
		var sb strings.Builder
		if err := t.ExecuteTemplate(&sb, n, vals); err != nil {
			return nil, cleanExecErr(n, err)
		}
		out[n] = strings.ReplaceAll(sb.String(), "<no value>", "")
	}
	return out, nil
}

// ---------- manifests ----------

// Helm's releaseutil.InstallOrder.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
	"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

type manifest struct {
	source  string
	content string
	kind    string
}

var sepRe = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

func splitManifests(source, text string) ([]manifest, error) {
	var out []manifest
	for _, doc := range sepRe.Split(text, -1) {
		doc = strings.TrimSpace(doc)
		if doc == "" {
			continue
		}
		var head map[string]interface{}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("YAML parse error on %s: %w", source, err)
		}
		if head == nil {
			continue // only comments
		}
		kind, _ := head["kind"].(string)
		apiVersion, _ := head["apiVersion"].(string)
		if kind == "" || apiVersion == "" {
			return nil, fmt.Errorf("%s: a document without apiVersion or kind:\n%s", source, doc)
		}
		out = append(out, manifest{source: source, content: doc, kind: kind})
	}
	return out, nil
}

func sortByKind(ms []manifest) {
	rank := map[string]int{}
	for i, k := range installOrder {
		rank[k] = i
	}
	sort.SliceStable(ms, func(i, j int) bool {
		ri, iok := rank[ms[i].kind]
		rj, jok := rank[ms[j].kind]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		default:
			return ms[i].kind < ms[j].kind
		}
	})
}

// ---------- main ----------

// chartFiles is .Files: as Helm's loader, every file of the chart except Chart.yaml, values.yaml,
// values.schema.json and what is under templates/ and charts/ (.helmignore is not read: this chart has none
// that matters), by its slash-separated path. Get and GetBytes only.
type chartFiles map[string][]byte

func (f chartFiles) Get(name string) string      { return string(f[name]) }
func (f chartFiles) GetBytes(name string) []byte { return f[name] }

func loadChartFiles(dir string) (chartFiles, error) {
	files := chartFiles{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "templates" || rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		switch rel {
		case "Chart.yaml", "values.yaml", "values.schema.json":
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = b
		return nil
	})
	return files, err
}

func run(o *options, stdout io.Writer) error {
	chartYAML, err := readYAMLMap(filepath.Join(o.chartDir, "Chart.yaml"))
	if err != nil {
		return fmt.Errorf("not a chart: %w", err)
	}
	chartName, _ := chartYAML["name"].(string)
	if chartName == "" {
		return errors.New("Chart.yaml: name is required")
	}
	if v, _ := chartYAML["apiVersion"].(string); v != "v2" {
		return fmt.Errorf("Chart.yaml: apiVersion must be v2, not %q", v)
	}
	kv, err := parseKubeVersion(o.kubeVersion)
	if err != nil {
		return err
	}
	funcs := baseFuncs()
	if c, _ := chartYAML["kubeVersion"].(string); c != "" {
		ok, err := funcs["semverCompare"].(func(string, string) (bool, error))(c, kv.Version)
		if err != nil {
			return fmt.Errorf("Chart.yaml kubeVersion %q: %w", c, err)
		}
		if !ok {
			return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c, kv.Version)
		}
	}

	defaults, err := readYAMLMap(filepath.Join(o.chartDir, "values.yaml"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	user, err := userValues(o)
	if err != nil {
		return err
	}
	values := merge(deepCopy(defaults), user, true)
	// Helm always provides .Values.global (coalesceGlobals), so a strict schema must allow it.
	if _, ok := values["global"]; !ok {
		values["global"] = map[string]interface{}{}
	}
	if err := validateSchema(chartName, filepath.Join(o.chartDir, "values.schema.json"), values); err != nil {
		return err
	}
	if o.valuesOnly {
		b, _ := json.MarshalIndent(values, "", "  ")
		_, err := fmt.Fprintln(stdout, string(b))
		return err
	}

	chartMeta := map[string]interface{}{}
	for k, v := range chartYAML {
		chartMeta[strings.ToUpper(k[:1])+k[1:]] = v
	}
	files, err := loadChartFiles(o.chartDir)
	if err != nil {
		return err
	}
	apis := append(versionSet{}, defaultAPIVersions...)
	apis = append(apis, o.apiVersions...)
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chartMeta,
		"Release": map[string]interface{}{
			"Name": o.releaseName, "Namespace": o.namespace, "Service": o.releaseService,
			"IsInstall": !o.isUpgrade, "IsUpgrade": o.isUpgrade, "Revision": 1,
		},
		"Capabilities": capabilities{KubeVersion: kv, APIVersions: apis, HelmVersion: helmVersion{Version: "v3.14.0"}},
		"Files":        files,
	}

	var tfiles []chartFile
	tdir := filepath.Join(o.chartDir, "templates")
	err = filepath.Walk(tdir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(o.chartDir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tfiles = append(tfiles, chartFile{name: chartName + "/" + filepath.ToSlash(rel), content: string(b)})
		return nil
	})
	if err != nil {
		return err
	}
	rendered, err := render(chartName, tfiles, top)
	if err != nil {
		return err
	}

	var out strings.Builder
	if o.includeCrds {
		crds, _ := filepath.Glob(filepath.Join(o.chartDir, "crds", "*"))
		sort.Strings(crds)
		for _, c := range crds {
			if ext := filepath.Ext(c); ext != ".yaml" && ext != ".yml" && ext != ".json" {
				continue
			}
			b, err := os.ReadFile(c)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(o.chartDir, c)
			name := chartName + "/" + filepath.ToSlash(rel)
			if _, err := splitManifests(name, string(b)); err != nil {
				return err
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, string(b))
		}
	}
	var notes string
	var paths []string
	for n := range rendered {
		paths = append(paths, n)
	}
	sort.Strings(paths)
	var ms []manifest
	for _, n := range paths {
		if strings.HasSuffix(n, "/NOTES.txt") {
			notes = rendered[n]
			continue
		}
		docs, err := splitManifests(n, rendered[n])
		if err != nil {
			return err
		}
		ms = append(ms, docs...)
	}
	sortByKind(ms)
	for _, m := range ms {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	if o.notes {
		fmt.Fprintf(&out, "\nNOTES:\n%s\n", notes)
	}
	_, err = io.WriteString(stdout, out.String())
	return err
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err == nil {
		err = run(o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s\n", strings.TrimRight(err.Error(), "\n"))
		os.Exit(1)
	}
}

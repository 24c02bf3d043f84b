// Command yamlprobe prints gopkg.in/yaml.v3 Marshal output (and the matching
// json.MarshalIndent output) for structs shaped like the go-sdk
// --airflow-metadata manifest, so pybundle can match the bytes exactly.
// Each case is printed as "=== <name> yaml|json ===\n" followed by the raw bytes.
// Usage: yamlprobe [-json]   (-json: one JSON object {case: {"yaml": .., "json": ..}} instead)
//
//	yamlprobe -stdin      read one manifest as JSON on stdin, write yaml.Marshal bytes to stdout
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

type manifest struct {
	AirflowBundleMetadataVersion string         `json:"airflow_bundle_metadata_version" yaml:"airflow_bundle_metadata_version"`
	SDK                          sdkInfo        `json:"sdk" yaml:"sdk"`
	Dags                         map[string]dag `json:"dags" yaml:"dags"`
}

type sdkInfo struct {
	Language                string `json:"language" yaml:"language"`
	Version                 string `json:"version" yaml:"version"`
	SupervisorSchemaVersion string `json:"supervisor_schema_version" yaml:"supervisor_schema_version"`
}

type dag struct {
	Tasks []string `json:"tasks" yaml:"tasks"`
}

// spec and bundleInfo mirror the go-sdk's --dump-bundle-spec and --bundle-metadata documents.
type spec struct {
	FormatVersion string         `json:"format_version" yaml:"format_version"`
	SDK           specSDK        `json:"sdk" yaml:"sdk"`
	Dags          map[string]dag `json:"dags" yaml:"dags"`
}

type specSDK struct {
	Language string `json:"language" yaml:"language"`
	Version  string `json:"version" yaml:"version"`
}

type bundleInfo struct {
	Name    string  `json:"name" yaml:"name"`
	Version *string `json:"version" yaml:"version"`
}

func base(dags map[string]dag) manifest {
	return manifest{
		AirflowBundleMetadataVersion: "1.0",
		SDK:                          sdkInfo{Language: "go", Version: "(devel)", SupervisorSchemaVersion: "2026-06-16"},
		Dags:                         dags,
	}
}

// keyOrder uses dag ids (map keys) that distinguish plain byte order from
// yaml.v3's own key sorting (numeric runs compared by value, letters first).
func keyOrder() map[string]dag {
	keys := []string{"a10", "a9", "a09", "a_b", "ab", "aB", "A", "b", "B", "1", "10", "9", "09", "-1", "_x",
		"a.b", "a-b", "task2", "task10", "task_2", "t_1", "t1", "t.1", "x1y", "x01y", "x10y", "Z", "z", "é", "日本",
		"dag_1_10", "dag_1_9", "dag.1", "dag-1", "dag1", "a", "aa", "a1", "a_", "a-", "a.", "1a", "1.5", "1.10"}
	m := map[string]dag{}
	for _, k := range keys {
		m[k] = dag{Tasks: []string{}}
	}
	return m
}

func main() {
	asJSON := flag.Bool("json", false, "emit one JSON document with all cases")
	fromStdin := flag.Bool("stdin", false, "re-encode the document read from stdin (JSON) with Go's encoders")
	kind := flag.String("kind", "manifest", "with -stdin: manifest (--airflow-metadata), spec (--dump-bundle-spec) or info (--bundle-metadata)")
	format := flag.String("format", "yaml", "with -stdin: yaml (yaml.v3 Marshal) or json (json.MarshalIndent with 4 spaces, plus a newline)")
	flag.Parse()

	if *fromStdin {
		var doc any
		switch *kind {
		case "manifest":
			doc = &manifest{}
		case "spec":
			doc = &spec{}
		case "info":
			doc = &bundleInfo{}
		default:
			fmt.Fprintln(os.Stderr, "yamlprobe: unknown -kind", *kind)
			os.Exit(2)
		}
		dec := json.NewDecoder(os.Stdin)
		dec.DisallowUnknownFields()
		if err := dec.Decode(doc); err != nil {
			fmt.Fprintln(os.Stderr, "yamlprobe:", err)
			os.Exit(1)
		}
		var out []byte
		var err error
		if *format == "json" {
			out, err = json.MarshalIndent(doc, "", "    ")
			out = append(out, '\n')
		} else {
			out, err = yaml.Marshal(doc)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "yamlprobe:", err)
			os.Exit(1)
		}
		os.Stdout.Write(out)
		return
	}

	tricky := []string{"123", "true", "yes", "on", "1.0", "null", "~", "2026-06-16", "a.b", "-x", "---",
		"", " lead", "trail ", "a: b", "a #b", "#x", "x#y", "'q'", "\"dq\"", "0x1F", "0o17", "017", "1e3",
		".inf", "-.inf", ".nan", "NaN", "False", "Y", "n", "no", "off", "NULL", "Null", "<tag>", "a&b",
		"é", "日本", "tab\there", "multi\nline", "@at", "`bt", "!bang", "%pct", "*star", "&amp", "?q",
		"[x]", "{x}", "|pipe", ">gt", "a,b", "a-b", "a_b", "12:30", "1_000", "+1", "-1", "0", "00",
		"1.", ".5", "2001-12-14t21:59:43.10-05:00", "=", "<<", strings.Repeat("long_task_id_", 10)}

	cases := []struct {
		name string
		v    any
	}{
		{"example_bundle", base(map[string]dag{
			"simple_dag":          {Tasks: []string{"extract", "transform", "load"}},
			"concurrent_xcom_dag": {Tasks: []string{"pull_xcoms_concurrently"}},
		})},
		{"tricky_task_ids", base(map[string]dag{"odd_dag": {Tasks: tricky}})},
		{"tricky_dag_ids", base(map[string]dag{"123": {Tasks: []string{"t"}}, "true": {Tasks: []string{"t"}},
			"null": {Tasks: []string{"t"}}, "a: b": {Tasks: []string{"t"}}, "-x": {Tasks: []string{"t"}},
			"2026-06-16": {Tasks: []string{"t"}}, "B_upper": {Tasks: []string{"t"}}, "a_lower": {Tasks: []string{"t"}}})},
		{"key_order", base(keyOrder())},
		{"empty_tasks", base(map[string]dag{"d": {Tasks: []string{}}})},
		{"nil_tasks", base(map[string]dag{"d": {Tasks: nil}})},
		{"empty_dags", base(map[string]dag{})},
		{"nil_dags", base(nil)},
	}

	all := map[string]map[string]string{}
	for _, c := range cases {
		y, err := yaml.Marshal(c.v)
		if err != nil {
			fmt.Fprintln(os.Stderr, c.name, err)
			os.Exit(1)
		}
		j, err := json.MarshalIndent(c.v, "", "    ")
		if err != nil {
			fmt.Fprintln(os.Stderr, c.name, err)
			os.Exit(1)
		}
		j = append(j, '\n')
		if *asJSON {
			all[c.name] = map[string]string{"yaml": string(y), "json": string(j)}
			continue
		}
		fmt.Printf("=== %s yaml ===\n%s", c.name, y)
		fmt.Printf("=== %s json ===\n%s", c.name, j)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", " ")
		_ = enc.Encode(all)
	}
}

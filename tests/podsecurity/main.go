// Command podsecurity evaluates pod templates with the upstream Pod Security Admission policy
// package (k8s.io/pod-security-admission/policy), the code the kube-apiserver's PodSecurity
// admission plugin runs.
//
// Input on stdin: a JSON array of {"name", "level", "version", "metadata", "spec"}, where level is
// privileged, baseline or restricted, version is "latest" or "v1.N", metadata is an ObjectMeta and
// spec a PodSpec. Output on stdout: a JSON array of {"name", "allowed", "forbidden": [reason:
// detail, ...]} in the same order. Exit code 2 on bad input.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

type pod struct {
	Name     string            `json:"name"`
	Level    string            `json:"level"`
	Version  string            `json:"version"`
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     corev1.PodSpec    `json:"spec"`
}

type verdict struct {
	Name      string   `json:"name"`
	Allowed   bool     `json:"allowed"`
	Forbidden []string `json:"forbidden"`
}

func main() {
	var pods []pod
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pods); err != nil {
		fmt.Fprintln(os.Stderr, "podsecurity: bad input:", err)
		os.Exit(2)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podsecurity:", err)
		os.Exit(2)
	}
	out := make([]verdict, 0, len(pods))
	for _, p := range pods {
		level, err := api.ParseLevel(p.Level)
		if err != nil {
			fmt.Fprintln(os.Stderr, "podsecurity:", p.Name, err)
			os.Exit(2)
		}
		version, err := api.ParseVersion(p.Version)
		if err != nil {
			fmt.Fprintln(os.Stderr, "podsecurity:", p.Name, err)
			os.Exit(2)
		}
		results := evaluator.EvaluatePod(api.LevelVersion{Level: level, Version: version}, &p.Metadata, &p.Spec)
		v := verdict{Name: p.Name, Allowed: true, Forbidden: []string{}}
		for _, r := range results {
			if !r.Allowed {
				v.Allowed = false
				v.Forbidden = append(v.Forbidden, r.ForbiddenReason+": "+r.ForbiddenDetail)
			}
		}
		out = append(out, v)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "podsecurity:", err)
		os.Exit(2)
	}
}

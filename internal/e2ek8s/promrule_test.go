package e2ek8s

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// TestChartPrometheusRule renders the chart (helm template; no node
// needed): by default no PrometheusRule; with prometheusRule.enabled one,
// labelled as asked, whose spec is deploy/prometheus/redis-manager.rules.yml
// itself (the chart reads that file through a link; no second copy).
func TestChartPrometheusRule(t *testing.T) {
	kinds := func(b []byte) map[string][]map[string]any {
		out := map[string][]map[string]any{}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				return out
			} else if err != nil {
				t.Fatal(err)
			}
			if obj == nil {
				continue
			}
			k, _ := obj["kind"].(string)
			out[k] = append(out[k], obj)
		}
	}
	if got := kinds(renderChart(t, "rules", nil))["PrometheusRule"]; len(got) != 0 {
		t.Fatalf("the chart renders a PrometheusRule by default: %v", got)
	}
	objs := kinds(renderChart(t, "rules", map[string]string{"prometheusRule.enabled": "true", "prometheusRule.labels.release": "kps"}))
	prs := objs["PrometheusRule"]
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules rendered with prometheusRule.enabled, want 1", len(prs))
	}
	pr := prs[0]
	if pr["apiVersion"] != "monitoring.coreos.com/v1" {
		t.Errorf("apiVersion %v", pr["apiVersion"])
	}
	meta, _ := pr["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	if meta["name"] != "rm-redis-manager" || labels["release"] != "kps" || labels["app.kubernetes.io/name"] != "redis-manager" {
		t.Errorf("metadata %v", meta)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "redis-manager.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pr["spec"], file) {
		t.Errorf("the PrometheusRule's spec is not deploy/prometheus/redis-manager.rules.yml:\nspec: %v\nfile: %v", pr["spec"], file)
	}
	groups, _ := file["groups"].([]any)
	if len(groups) != 1 || len(groups[0].(map[string]any)["rules"].([]any)) < 13 {
		t.Errorf("the rules file has %d groups: %v", len(groups), groups)
	}
}

package alerts

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite deploy/prometheus/redis-manager.rules.yml from Rules and PromRules")

// rulesFile is the shipped Prometheus rules file; the Helm chart's
// PrometheusRule renders the same file (a link in the chart's files/).
var rulesFile = filepath.Join("..", "..", "deploy", "prometheus", "redis-manager.rules.yml")

type promFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestPrometheusRulesFile: the committed file is what Rules and PromRules
// render; read back as YAML, it has one alert per manager rule (label
// rule = the rule's name, and no other), each with the rule's severity,
// default for, and default threshold in its expression.
func TestPrometheusRulesFile(t *testing.T) {
	want, err := PrometheusRules(Rules)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(rulesFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what Rules and PromRules render: run  go test ./internal/alerts -run TestPrometheusRulesFile -update", rulesFile)
	}
	var f promFile
	if err := yaml.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Groups) != 1 {
		t.Fatalf("%d groups, want 1", len(f.Groups))
	}
	byRule := map[string]int{}
	alerts := map[string]bool{}
	for _, pr := range f.Groups[0].Rules {
		name := pr.Labels["rule"]
		byRule[name]++
		if alerts[pr.Alert] {
			t.Errorf("alert %s twice", pr.Alert)
		}
		alerts[pr.Alert] = true
		r, ok := ruleByName(name)
		if !ok {
			t.Errorf("alert %s: label rule %q is no manager rule", pr.Alert, name)
			continue
		}
		if pr.Labels["severity"] != r.Severity {
			t.Errorf("%s: severity %q, the manager's %q", name, pr.Labels["severity"], r.Severity)
		}
		d, err := time.ParseDuration(pr.For) // the forms the file uses: 0s, 30s, 2m
		if err != nil || d != r.For {
			t.Errorf("%s: for %q (%v), the manager's default %v", name, pr.For, err, r.For)
		}
		if r.Unit != "" {
			th := strconv.FormatFloat(r.Threshold, 'f', -1, 64)
			if !strings.Contains(pr.Expr, " "+th) && !strings.Contains(pr.Expr, "["+th) {
				t.Errorf("%s: the expression %q does not hold the default threshold %s", name, pr.Expr, th)
			}
		}
		if pr.Annotations["summary"] == "" || pr.Annotations["description"] != r.Help {
			t.Errorf("%s: annotations %v", name, pr.Annotations)
		}
	}
	for _, r := range Rules {
		if byRule[r.Name] != 1 {
			t.Errorf("manager rule %s: %d Prometheus rules, want 1", r.Name, byRule[r.Name])
		}
	}
	if len(f.Groups[0].Rules) != len(Rules) {
		t.Errorf("%d Prometheus rules for %d manager rules", len(f.Groups[0].Rules), len(Rules))
	}

	// The threshold is wired, not written twice: another default threshold
	// renders another expression (and only that rule's).
	for i, r := range Rules {
		if r.Unit == "" {
			continue
		}
		moved := append([]Rule(nil), Rules...)
		moved[i].Threshold = r.Threshold*3 + 7
		other, err := PrometheusRules(moved)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(other, want) || !bytes.Contains(other, []byte(strconv.FormatFloat(moved[i].Threshold, 'f', -1, 64))) {
			t.Errorf("%s: a threshold of %v does not change the rendered rule", r.Name, moved[i].Threshold)
		}
	}
}

// TestPromRulesCoverRules: every rule has one expression and every
// expression names a rule.
func TestPromRulesCoverRules(t *testing.T) {
	n := map[string]int{}
	for _, p := range PromRules {
		if _, ok := ruleByName(p.Rule); !ok {
			t.Errorf("PromRules: %q is no rule", p.Rule)
		}
		n[p.Rule]++
	}
	for _, r := range Rules {
		if n[r.Name] != 1 {
			t.Errorf("rule %s: %d expressions in PromRules, want 1", r.Name, n[r.Name])
		}
	}
	if _, err := PrometheusRules(append(append([]Rule(nil), Rules...), Rule{Name: "no-such", Severity: Info})); err == nil {
		t.Error("a rule without an expression rendered")
	}
}

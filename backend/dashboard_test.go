package backend

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboardQueriesExistingMetrics: bootstrap/grafana/dashboard.json is valid JSON
// that Grafana imports (a Prometheus data source variable every panel uses), and every metric
// its queries name is in the metrics output of a mount that has minted, hit its cache and
// rotated: a renamed metric cannot leave a panel empty.
func TestGrafanaDashboardQueriesExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "bootstrap", "grafana", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		Templating struct {
			List []struct{ Name, Type, Query any } `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct{ Type, UID string }
			Targets    []struct {
				Expr       string `json:"expr"`
				Datasource struct{ Type, UID string }
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json does not parse: %v", err)
	}
	hasDSVar := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDSVar = true
		}
	}
	if !hasDSVar {
		t.Fatal("dashboard.json has no Prometheus data source variable named datasource")
	}

	e := newAppEnv(t)
	mustOK(t, e.read("creds/app"))
	mustOK(t, e.read("creds/app"))
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	for i := 0; i < 40 && e.rotation("prod")["state"] != "failed"; i++ { // a failure, for the failures counter
		e.clock.Advance(probeInterval)
		e.tick()
	}
	mustOK(t, e.write("connections/prod", map[string]any{"key_rotation_period": "720h"})) // a next rotation
	fams := e.scrape()

	metricName := regexp.MustCompile(`vault_salesforce_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q, %d queries; want ${datasource} and at least one", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			if q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query on data source %q", p.Title, q.Datasource.UID)
			}
			for _, name := range metricName.FindAllString(q.Expr, -1) {
				queried++
				family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if f := fams[family]; f == nil || len(f.Metric) == 0 {
					t.Errorf("panel %q queries %s, which the metrics output does not hold", p.Title, name)
				}
			}
		}
	}
	if queried < len(dash.Panels) {
		t.Fatalf("only %d metric references in %d panels", queried, len(dash.Panels))
	}
	// Every metric the engine serves has a panel.
	for name := range fams {
		if !strings.Contains(string(raw), name) {
			t.Errorf("metric %s has no panel on the dashboard", name)
		}
	}
}

package metrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var shoalName = regexp.MustCompile(`shoal_[a-z_]+[a-z]`)

// names are the shoal_ metric names a file mentions (histograms' series
// named by their family).
func names(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range shoalName.FindAllString(string(b), -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			n, _ = strings.CutSuffix(n, suffix)
		}
		out[n] = true
	}
	return out
}

// Every metric the package defines is in docs/metrics.md, and the
// documentation and the Grafana dashboard name no metric that does not
// exist.
func TestDocsAndDashboardNameRealMetrics(t *testing.T) {
	defined := map[string]bool{}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if m, _ := filepath.Match("*_test.go", f); m {
			continue
		}
		for n := range names(t, f) {
			defined[n] = true
		}
	}
	if len(defined) < 25 {
		t.Fatalf("found only %d metric names in the package: %v", len(defined), defined)
	}
	docs := names(t, "../../docs/metrics.md")
	for n := range defined {
		if !docs[n] {
			t.Errorf("%s is not in docs/metrics.md", n)
		}
	}
	for n := range docs {
		if !defined[n] {
			t.Errorf("docs/metrics.md names %s, which is not defined", n)
		}
	}
	dash := names(t, "../../docs/grafana/shoal.json")
	for n := range dash {
		if !defined[n] {
			t.Errorf("the dashboard queries %s, which is not defined", n)
		}
	}
	var missing []string
	for _, n := range []string{"shoal_api_requests_total", "shoal_engines", "shoal_containers", "shoal_store_has_quorum", "shoal_service_update_progress_ratio"} {
		if !dash[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard shows none of %v", slices.Sorted(slices.Values(missing)))
	}
}

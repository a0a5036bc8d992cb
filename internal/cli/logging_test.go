package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// --log-format json writes one JSON object a line; text writes key=value;
// anything else is refused, naming the flag.
func TestLogFormat(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLoggerTo(&buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hello", "node", "n1")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "hello" || line["node"] != "n1" || line["level"] != "DEBUG" {
		t.Errorf("json log %q: %v", buf.String(), err)
	}
	buf.Reset()
	log, err = newLoggerTo(&buf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("hello", "node", "n1")
	if got := buf.String(); !strings.Contains(got, "msg=hello node=n1") || strings.Contains(got, "hidden") {
		t.Errorf("text log %q", got)
	}
	if _, err := newLoggerTo(&buf, "info", "xml"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("xml: %v", err)
	}
}

// Every long-running command takes --log-format.
func TestLogFormatFlagOnServingCommands(t *testing.T) {
	root := newRootCmd()
	for _, name := range []string{"manage", "init", "join"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		if f := cmd.Flags().Lookup("log-format"); f == nil || f.DefValue != "text" {
			t.Errorf("%s: --log-format %v", name, f)
		}
	}
}

// shoal version names the commit it was built from.
func TestVersionPrintsCommit(t *testing.T) {
	defer func(c string) { GitCommit = c }(GitCommit)
	GitCommit = "0123abc"
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "shoal "+Version) || !strings.Contains(got, "commit 0123abc") {
		t.Errorf("version printed %q", got)
	}
}

// shoal completion writes a script for each shell cobra supports.
func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "bash completion", "zsh": "#compdef shoal", "fish": "fish completion", "powershell": "powershell completion"} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"completion", shell})
		if err := root.Execute(); err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		if !strings.Contains(out.String(), marker) || !strings.Contains(out.String(), "shoal") {
			t.Errorf("%s: no %q in the script", shell, marker)
		}
	}
}

package secrets

import "testing"

// TestCanonSortsUnorderedLists: the secret references' order, which the
// CLI leaves to a map, does not make a difference; their content does.
func TestCanonSortsUnorderedLists(t *testing.T) {
	step := "service inspect --format {{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{json .File}} {{end}} sweb [stdout]"
	a := `pw {"Name":"pw","UID":"0","GID":"0","Mode":292} other {"Name":"o2","UID":"0","GID":"0","Mode":292} conf {"Name":"/etc/c.conf","UID":"0","GID":"0","Mode":288}`
	b := `other {"Name":"o2","UID":"0","GID":"0","Mode":292} pw {"Name":"pw","UID":"0","GID":"0","Mode":292} conf {"Name":"/etc/c.conf","UID":"0","GID":"0","Mode":288}`
	if canon(step, a) != canon(step, b) {
		t.Errorf("the same references in another order differ:\n%s\n%s", canon(step, a), canon(step, b))
	}
	c := `other {"Name":"o3","UID":"0","GID":"0","Mode":292} pw {"Name":"pw","UID":"0","GID":"0","Mode":292} conf {"Name":"/etc/c.conf","UID":"0","GID":"0","Mode":288}`
	if canon(step, a) == canon(step, c) {
		t.Error("a different target compares equal")
	}
	if canon("secret ls [stdout]", "b a") != "b a" {
		t.Error("an ordered step was reordered")
	}
}

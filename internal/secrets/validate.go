package secrets

import (
	"regexp"

	"github.com/moby/moby/api/types/swarm"
)

// validName is swarm mode's rule for secret and config names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

func validateName(name string) error {
	switch {
	case name == "":
		return invalidArg("name must be provided")
	case len(name) > 64 || !validName.MatchString(name):
		return invalidArg("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]")
	}
	return nil
}

// validateSecret checks a secret's spec as swarm mode does; a driver is
// refused (shoal has none) before the data is looked at, as swarm mode
// looks at no data for a driver's secret.
func validateSecret(spec swarm.SecretSpec) error {
	if err := validateName(spec.Name); err != nil {
		return err
	}
	if spec.Driver != nil {
		return errDriver(spec.Driver.Name)
	}
	if len(spec.Data) >= MaxSecretSize || len(spec.Data) < 1 {
		return invalidArg("secret data must be larger than 0 and less than %d bytes", MaxSecretSize)
	}
	return validateTemplating(spec.Templating)
}

func validateConfig(spec swarm.ConfigSpec) error {
	if err := validateName(spec.Name); err != nil {
		return err
	}
	if len(spec.Data) >= MaxConfigSize || len(spec.Data) < 1 {
		return invalidArg("config data must be larger than 0 and less than %d bytes", MaxConfigSize)
	}
	return validateTemplating(spec.Templating)
}

// templatingGolang is the one templating driver swarm mode knows.
const templatingGolang = "golang"

// validateTemplating refuses a templating driver swarm mode's nodes would
// not know (they fail the task: "unrecognized template type"); shoal
// says so at create.
func validateTemplating(t *swarm.Driver) error {
	if t == nil || t.Name == templatingGolang {
		return nil
	}
	return invalidArg("unrecognized template type %s (only %s is known)", t.Name, templatingGolang)
}

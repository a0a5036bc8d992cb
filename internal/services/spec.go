package services

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/swarm"
)

// Validation and normalization of service specs, as swarm mode's manager
// does them: the same checks with the same words, and the spec stored as
// swarm mode shows it back (its gRPC round trip fills a few fields).

var validName = regexp.MustCompile(`^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`)

// validate checks spec as swarm mode checks a create or an update.
func validate(spec *swarm.ServiceSpec) error {
	if err := validateName(spec.Name); err != nil {
		return err
	}
	if err := validateMode(spec); err != nil {
		return err
	}
	if err := validateTask(&spec.TaskTemplate); err != nil {
		return err
	}
	if isJob(spec.Mode) {
		if spec.UpdateConfig != nil {
			return invalidArg("Jobs may not have an update config")
		}
	} else if err := validateUpdate(spec.UpdateConfig, "update"); err != nil {
		return err
	}
	if err := validateUpdate(spec.RollbackConfig, "rollback"); err != nil {
		return err
	}
	return validateEndpoint(spec.EndpointSpec)
}

func validateName(name string) error {
	switch {
	case name == "":
		return invalidArg("meta: name must be provided")
	case !validName.MatchString(name):
		return invalidArg("name must be valid as a DNS name component")
	case len(name) > 63:
		return invalidArg("name must be 63 characters or fewer")
	}
	return nil
}

func validateMode(spec *swarm.ServiceSpec) error {
	n := 0
	for _, set := range []bool{spec.Mode.Replicated != nil, spec.Mode.Global != nil,
		spec.Mode.ReplicatedJob != nil, spec.Mode.GlobalJob != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errdefs.ErrInvalidArgument.WithMessage("must specify only one service mode")
	}
	// Replicas are unsigned on the wire: a negative number fails to decode
	// (400) before it gets here; one past int64 is a negative one cast.
	if r := spec.Mode.Replicated; r != nil && r.Replicas != nil && int64(*r.Replicas) < 0 {
		return invalidArg("Number of replicas must be non-negative")
	}
	if j := spec.Mode.ReplicatedJob; j != nil {
		if j.MaxConcurrent != nil && int64(*j.MaxConcurrent) < 0 {
			return invalidArg("Maximum concurrent jobs must not be negative")
		}
		if j.TotalCompletions != nil && int64(*j.TotalCompletions) < 0 {
			return invalidArg("Total completed jobs must not be negative")
		}
	}
	return nil
}

func isJob(m swarm.ServiceMode) bool { return m.ReplicatedJob != nil || m.GlobalJob != nil }

func validateTask(t *swarm.TaskSpec) error {
	switch t.Runtime {
	case "", swarm.RuntimeContainer:
	default:
		return errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf("unsupported runtime type: %q (shoal runs container services only)", t.Runtime))
	}
	if t.PluginSpec != nil || t.NetworkAttachmentSpec != nil {
		return errdefs.ErrNotImplemented.WithMessage("shoal runs container services only: plugin and network attachment task specs are not supported")
	}
	if r := t.Resources; r != nil {
		if err := validateResources(r.Limits); err != nil {
			return err
		}
		if r.Reservations != nil {
			if err := validateResources(&swarm.Limit{NanoCPUs: r.Reservations.NanoCPUs, MemoryBytes: r.Reservations.MemoryBytes}); err != nil {
				return err
			}
		}
	}
	if rp := t.RestartPolicy; rp != nil {
		if err := validateRestart(rp); err != nil {
			return err
		}
	}
	if t.Placement != nil {
		if err := validateConstraints(t.Placement.Constraints); err != nil {
			return err
		}
	}
	return validateContainer(t.ContainerSpec)
}

// checkRefs checks the spec's secret and config references with the
// Refs of the backend (after validate: the container spec is there).
func (b *Backend) checkRefs(ctx context.Context, spec *swarm.ServiceSpec) error {
	cs := spec.TaskTemplate.ContainerSpec
	if len(cs.Secrets) == 0 && len(cs.Configs) == 0 {
		return nil
	}
	if b.refs == nil {
		return invalidArg("%s", secretsMissing(cs))
	}
	return b.refs.CheckRefs(ctx, cs)
}

// secretsMissing words the refusal of secret and config references
// without a Refs: every one named is missing, as swarm mode says of an
// unknown one.
func secretsMissing(c *swarm.ContainerSpec) string {
	var names []string
	for _, s := range c.Secrets {
		names = append(names, s.SecretName)
	}
	what := "secret"
	if len(c.Secrets) == 0 {
		what = "config"
		for _, s := range c.Configs {
			names = append(names, s.ConfigName)
		}
	}
	if len(names) > 1 {
		what += "s"
	}
	return what + " not found: " + strings.Join(names, ", ")
}

func validateResources(l *swarm.Limit) error {
	if l == nil {
		return nil
	}
	if l.NanoCPUs != 0 && l.NanoCPUs < 1e6 {
		return invalidArg("invalid cpu value %g: Must be at least %g", float64(l.NanoCPUs)/1e9, 1e6/1e9)
	}
	if l.MemoryBytes != 0 && l.MemoryBytes < 4*1024*1024 {
		return invalidArg("invalid memory value %d: Must be at least 4MiB", l.MemoryBytes)
	}
	return nil
}

func validateRestart(rp *swarm.RestartPolicy) error {
	switch rp.Condition {
	case "", swarm.RestartPolicyConditionNone, swarm.RestartPolicyConditionOnFailure, swarm.RestartPolicyConditionAny:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid RestartCondition: %q", rp.Condition))
	}
	if rp.Delay != nil && *rp.Delay < 0 {
		return invalidArg("TaskSpec: restart-delay cannot be negative")
	}
	if rp.Window != nil && *rp.Window < 0 {
		return invalidArg("TaskSpec: restart-window cannot be negative")
	}
	return nil
}

var (
	constraintKey   = regexp.MustCompile(`^(?i)[a-z_][a-z0-9\-_.]+$`)
	constraintValue = regexp.MustCompile(`^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$`)
)

// badConstraint is a constraint refused in swarm mode's words: its
// manager returns the parser's error without a gRPC code, so dockerd
// prints "code = Unknown" and answers 500. The mistake is the client's:
// 400, with the same words for the scripts that read them.
func badConstraint(format string, a ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(rpcError("Unknown", fmt.Sprintf(format, a...)))
}

// validateConstraints checks "key==value" and "key!=value" expressions
// with swarm mode's syntax and words.
func validateConstraints(cs []string) error {
	for _, c := range cs {
		op := ""
		for _, o := range []string{"==", "!="} {
			if strings.Contains(c, o) {
				op = o
				break
			}
		}
		if op == "" {
			return badConstraint("constraint expected one operator from ==, !=")
		}
		k, v, _ := strings.Cut(c, op)
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !constraintKey.MatchString(k) {
			return badConstraint("key '%s' is invalid", k)
		}
		if !constraintValue.MatchString(v) {
			return badConstraint("value '%s' is invalid", v)
		}
	}
	return nil
}

func validateContainer(c *swarm.ContainerSpec) error {
	if c == nil || c.Image == "" {
		return invalidArg("ContainerSpec: image reference must be provided")
	}
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		return invalidArg("ContainerSpec: %q is not a valid repository/tag", c.Image)
	}
	seen := map[string]bool{}
	for _, m := range c.Mounts {
		if seen[m.Target] {
			return invalidArg("ContainerSpec: duplicate mount point: %s", m.Target)
		}
		seen[m.Target] = true
	}
	return validateHealthcheck(c)
}

func validateHealthcheck(c *swarm.ContainerSpec) error {
	hc := c.Healthcheck
	if hc == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", hc.Interval}, {"Timeout", hc.Timeout}, {"StartPeriod", hc.StartPeriod}, {"StartInterval", hc.StartInterval}} {
		if d.v != 0 && d.v < time.Millisecond {
			return invalidArg("ContainerSpec: %s in HealthConfig cannot be less than %s", d.name, time.Millisecond)
		}
	}
	if hc.Retries < 0 {
		return invalidArg("ContainerSpec: Retries in HealthConfig cannot be negative")
	}
	return nil
}

func validateUpdate(uc *swarm.UpdateConfig, what string) error {
	if uc == nil {
		return nil
	}
	if uc.Delay < 0 {
		return invalidArg("TaskSpec: %s-delay cannot be negative", what)
	}
	if uc.Monitor < 0 {
		return invalidArg("TaskSpec: %s-monitor cannot be negative", what)
	}
	if uc.MaxFailureRatio < 0 || uc.MaxFailureRatio > 1 {
		return invalidArg("TaskSpec: %s-maxfailureratio cannot be less than 0 or bigger than 1", what)
	}
	switch uc.FailureAction {
	case "", swarm.UpdateFailureActionPause, swarm.UpdateFailureActionContinue:
	case swarm.UpdateFailureActionRollback:
		if what == "rollback" {
			return errdefs.ErrInvalidArgument.WithMessage("unrecognized rollback failure action rollback")
		}
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("unrecognized %s failure action %s", what, uc.FailureAction))
	}
	switch uc.Order {
	case "", swarm.UpdateOrderStopFirst, swarm.UpdateOrderStartFirst:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("unrecognized %s order %s", what, uc.Order))
	}
	return nil
}

func validateEndpoint(ep *swarm.EndpointSpec) error {
	if ep == nil {
		return nil
	}
	switch ep.Mode {
	case "", swarm.ResolutionModeVIP, swarm.ResolutionModeDNSRR:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid resolution mode: %q", ep.Mode))
	}
	seen := map[string]bool{}
	for _, p := range ep.Ports {
		if ep.Mode == swarm.ResolutionModeDNSRR && p.PublishMode != swarm.PortConfigPublishModeHost && p.PublishedPort != 0 {
			return invalidArg("EndpointSpec: port published with ingress mode can't be used with dnsrr mode")
		}
		if p.PublishedPort == 0 {
			continue
		}
		key := fmt.Sprintf("%s/%d/%s", p.Protocol, p.PublishedPort, p.PublishMode)
		if seen[key] {
			return invalidArg("EndpointSpec: duplicate published ports provided")
		}
		seen[key] = true
	}
	return nil
}

// normalize fills what swarm mode's manager fills on the way in and out,
// so the spec reads back as dockerd shows it.
func normalize(spec *swarm.ServiceSpec) {
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	t := &spec.TaskTemplate
	if t.Runtime == "" {
		t.Runtime = swarm.RuntimeContainer
	}
	if t.ContainerSpec != nil && t.ContainerSpec.Isolation == "" {
		t.ContainerSpec.Isolation = "default"
	}
	if rp := t.RestartPolicy; rp != nil {
		if rp.Condition == "" {
			rp.Condition = swarm.RestartPolicyConditionAny
		}
		if rp.MaxAttempts == nil {
			rp.MaxAttempts = new(uint64)
		}
	}
	normalizeMode(&spec.Mode)
	for _, uc := range []*swarm.UpdateConfig{spec.UpdateConfig, spec.RollbackConfig} {
		if uc == nil {
			continue
		}
		if uc.FailureAction == "" {
			uc.FailureAction = swarm.UpdateFailureActionPause
		}
		if uc.Order == "" {
			uc.Order = swarm.UpdateOrderStopFirst
		}
	}
	if ep := spec.EndpointSpec; ep != nil && ep.Mode == "" {
		ep.Mode = swarm.ResolutionModeVIP
	}
}

func normalizeMode(m *swarm.ServiceMode) {
	switch {
	case m.Global != nil, m.GlobalJob != nil:
	case m.ReplicatedJob != nil:
		j := m.ReplicatedJob
		if j.MaxConcurrent == nil {
			j.MaxConcurrent = ptr(uint64(1))
		}
		if j.TotalCompletions == nil {
			j.TotalCompletions = ptr(*j.MaxConcurrent)
		}
	default:
		if m.Replicated == nil {
			m.Replicated = &swarm.ReplicatedService{}
		}
		if m.Replicated.Replicas == nil {
			m.Replicated.Replicas = ptr(uint64(1))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// withDefaults is spec with swarm mode's defaults filled in where it
// leaves them unset (GET /services/{id}?insertDefaults=true).
func withDefaults(spec swarm.ServiceSpec) swarm.ServiceSpec {
	out := spec
	t := &out.TaskTemplate
	if t.ContainerSpec != nil {
		c := *t.ContainerSpec
		if c.StopGracePeriod == nil {
			c.StopGracePeriod = ptr(10 * time.Second)
		}
		if c.DNSConfig == nil {
			c.DNSConfig = &swarm.DNSConfig{}
		}
		t.ContainerSpec = &c
	}
	if t.Resources == nil {
		t.Resources = &swarm.ResourceRequirements{}
	}
	if t.RestartPolicy == nil {
		t.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, MaxAttempts: new(uint64)}
	} else {
		rp := *t.RestartPolicy
		t.RestartPolicy = &rp
	}
	if t.RestartPolicy.Delay == nil {
		t.RestartPolicy.Delay = ptr(5 * time.Second)
	}
	if t.Placement == nil {
		t.Placement = &swarm.Placement{}
	}
	out.UpdateConfig = defaultUpdate(out.UpdateConfig)
	out.RollbackConfig = defaultUpdate(out.RollbackConfig)
	return out
}

func defaultUpdate(uc *swarm.UpdateConfig) *swarm.UpdateConfig {
	if uc == nil {
		return &swarm.UpdateConfig{Parallelism: 1, FailureAction: swarm.UpdateFailureActionPause,
			Monitor: 5 * time.Second, Order: swarm.UpdateOrderStopFirst}
	}
	c := *uc
	if c.Monitor == 0 {
		c.Monitor = 5 * time.Second
	}
	return &c
}

package cli

import (
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/authz"
)

// authzFlags adds the client authorization flags to a command that serves
// the Docker API (manage, and init/join as managers).
func authzFlags(f *pflag.FlagSet, c *authz.Config) {
	f.StringVar(&c.DefaultRole, "authz-default-role", "admin",
		"role of a verified client certificate that carries no shoal role (OU shoal-admin, shoal-operator, shoal-viewer) and matches no --authz-policy rule: admin, operator, viewer or none. "+
			"admin is what dockerd --tlsverify grants every verified client; lower it when the CA also signs certificates for people who should not be root on every host")
	f.StringVar(&c.PolicyFile, "authz-policy", "",
		`JSON file mapping certificates of another PKI to roles and label scopes: {"rules":[{"cn":"alice","role":"operator","scope":{"team":"web"}},{"ou":"ops","role":"admin"}]}; the first matching rule wins`)
}

package emulator

// Fixed identifiers of the demo seed, so scripts and docs can name them.
const (
	DemoOrgID          = "00D5g00000DeMo1"
	DemoUserID         = "0055g00000DeMoU"
	DemoDeployerID     = "0055g00000DeMoD"
	DemoConsumerKey    = "3MVG9DemoVaultJWTConsumerKeyForTheSalesforceEmulator000000000000000000000000000000000"
	DemoAppName        = "Vault_JWT"
	DemoUsername       = "integration@example.com"
	DemoDeployUsername = "deployer@example.com"
)

// SeedDemo creates one production org, an integration user and a deployer
// (who may modify metadata), both pre-authorised on the admin-approved
// connected app Vault_JWT, which has a fixed consumer key and no
// certificate yet. Calling it again returns the same seed (and resets
// those records to their seeded state).
func (e *Emulator) SeedDemo() DemoSeed {
	org := e.AddOrg(Org{ID: DemoOrgID, Name: "Vault Demo Org"})
	user := e.AddUser(User{
		ID: DemoUserID, OrgID: org.ID, Username: DemoUsername,
		Email: DemoUsername, DisplayName: "Integration User",
	})
	deployer := e.AddUser(User{
		ID: DemoDeployerID, OrgID: org.ID, Username: DemoDeployUsername,
		Email: DemoDeployUsername, DisplayName: "Deployment User", CanModifyMetadata: true,
	})
	app := e.AddApp(App{
		Name: DemoAppName, OrgID: org.ID, ConsumerKey: DemoConsumerKey,
		Label: "Vault JWT", ContactEmail: "ops@example.com",
		CallbackURL:        "https://localhost/callback",
		AdminApproved:      true,
		PreAuthorizedUsers: []string{DemoUsername, DemoDeployUsername},
		Scopes:             []string{"Api", "RefreshToken"},
		Extra: map[string]string{
			"oauthPolicy.ipRelaxation":       "ENFORCE",
			"oauthPolicy.refreshTokenPolicy": "infinite",
		},
	})
	return DemoSeed{Org: org, User: user, Deployer: deployer, App: app}
}

// ProcessState is what cmd/salesforce-emulator writes to its -state-out file once it listens,
// for scripts and the end-to-end harness to find the emulator and its demo seed.
type ProcessState struct {
	URL            string `json:"url"`
	CAFile         string `json:"ca_file"`
	ConsumerKey    string `json:"consumer_key"`
	OrgID          string `json:"org_id"`
	Username       string `json:"username"`
	DeployUsername string `json:"deploy_username"`
	AppName        string `json:"app_name"`
}

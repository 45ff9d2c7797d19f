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

	// The External Client App for the client credentials flow and its run-as user.
	DemoRunAsID          = "0055g00000DeMoR"
	DemoRunAsUsername    = "runas@example.com"
	DemoCCAppName        = "Vault_CC"
	DemoCCAppID          = "0xI5g00000DeMoC"
	DemoCCConsumerID     = "8885g00000DeMoC"
	DemoCCConsumerKey    = "3MVG9DemoVaultClientCredentialsConsumerKeyForTheSalesforceEmulator0000000000000000000"
	DemoCCConsumerSecret = "DE00C11E47C2ED3471A15F0275EC4E7DE00C11E47C2ED3471A15F0275EC4E7AA"
)

// SeedDemo creates one production org, an integration user and a deployer
// (who may modify metadata), both pre-authorised on the admin-approved
// connected app Vault_JWT, which has a fixed consumer key and no
// certificate yet. Besides, the External Client App Vault_CC has the client
// credentials flow enabled with a fixed consumer key and secret, and the API
// Only user runas@example.com as its pre-authorised run-as user. Calling it
// again returns the same seed (and resets those records to their seeded
// state).
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
	runAs := e.AddUser(User{
		ID: DemoRunAsID, OrgID: org.ID, Username: DemoRunAsUsername,
		Email: DemoRunAsUsername, DisplayName: "Client Credentials Run-As User", APIOnly: true,
	})
	cc := e.AddApp(App{
		Name: DemoCCAppName, Type: appTypeECA, ID: DemoCCAppID, OrgID: org.ID,
		ConsumerKey: DemoCCConsumerKey, ConsumerSecret: DemoCCConsumerSecret, ConsumerID: DemoCCConsumerID,
		Label: "Vault Client Credentials", ContactEmail: "ops@example.com",
		CallbackURL:              "https://localhost/callback",
		AdminApproved:            true,
		PreAuthorizedUsers:       []string{DemoRunAsUsername},
		Scopes:                   []string{"Api"},
		ClientCredentialsEnabled: true,
		RunAsUsername:            DemoRunAsUsername,
	})
	return DemoSeed{Org: org, User: user, Deployer: deployer, App: app, RunAs: runAs, CCApp: cc}
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
	// The client credentials demo app (Vault_CC) and its run-as user.
	CCAppName        string `json:"cc_app_name"`
	CCAppID          string `json:"cc_app_id"`
	CCConsumerKey    string `json:"cc_consumer_key"`
	CCConsumerSecret string `json:"cc_consumer_secret"`
	RunAsUsername    string `json:"run_as_username"`
}

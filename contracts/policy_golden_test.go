package contracts

import (
	"encoding/json"
	"time"
)

const exampleSettingsID = "0195a3c4-0000-7000-8000-0000000000e1"

func ptr[T any](v T) *T { return &v }

var exampleSections = SettingsSections{
	RemoteTools: &RemoteToolsSettings{
		Enabled:          ptr(true),
		AccessLevel:      ptr(AccessFull),
		PromptUser:       ptr(true),
		PromptTimeout:    ptr(Duration(30 * time.Second)),
		AllowWhenNoUser:  ptr(true),
		ShowIndicator:    ptr(true),
		PlaySound:        ptr(true),
		PermittedViewers: ptr([]string{"alice", "group:helpdesk"}),
		TunnelPorts:      ptr([]int{5900, 3389, 22}),
	},
	RemoteAssistance: &RemoteAssistanceSettings{
		Manage:               ptr(true),
		OverrideUserSettings: ptr(true),
		Unsolicited:          ptr(true),
		Solicited:            ptr(true),
		Level:                ptr(AccessFull),
		RevertOnUnmanage:     ptr(true),
	},
	Agent: &AgentSettings{
		PolicyRefresh: ptr(Duration(15 * time.Minute)),
		Heartbeat:     ptr(Duration(60 * time.Second)),
		Inventory:     ptr(Duration(6 * time.Hour)),
	},
}

var exampleSettings = Settings{
	Name:             "Lab remote tools",
	Description:      "remote tools for the lab",
	Priority:         10,
	SettingsSections: exampleSections,
}

var exampleCollectionNamed = Named{ID: exampleCollectionID, Name: "Linux web"}

var exampleSettingsInfo = SettingsInfo{
	Settings:    exampleSettings,
	ID:          exampleSettingsID,
	BuiltIn:     true,
	Deployments: []Deployment{{Collection: exampleCollectionNamed, By: "alice", At: t1}},
	Created:     t0,
	CreatedBy:   "alice",
	Updated:     t1,
	UpdatedBy:   "bob",
	Revision:    42,
}

var exampleOrigins = map[string]Named{"remoteTools.enabled": {ID: exampleSettingsID, Name: "Lab remote tools"}}

var exampleRemoteAssistanceValues = RemoteAssistanceValues{Unsolicited: ptr(true), Solicited: ptr(true), Level: ptr(AccessView)}

var examplePolicyStatus = AgentPolicyStatus{
	Revision: 42,
	Issued:   t0,
	Expires:  t2,
	Applied:  t1,
	Settings: exampleSections,
	Origins:  exampleOrigins,
	RemoteAssistance: RemoteAssistanceState{
		Managed:          true,
		Tattooed:         true,
		Override:         true,
		RevertOnUnmanage: true,
		Effective:        exampleRemoteAssistanceValues,
		Sources:          map[string]string{"level": "site"},
		Site:             &exampleRemoteAssistanceValues,
		User:             &exampleRemoteAssistanceValues,
	},
	RemoteControlUsers: []string{"alice", "group:helpdesk"},
	Intervals:          AgentIntervals{Heartbeat: Duration(time.Minute), Inventory: Duration(6 * time.Hour), PolicyRefresh: Duration(time.Hour)},
	Rejected:           3,
	LastRejection:      &PolicyRejection{Revision: 41, Code: RejectReplay, Reason: "revision 41 is not newer than 42", At: t1},
}

func init() {
	// AgentStatus grew a policy, sessions and content: the example here replaces
	// the one in golden_test.go so that it sets every field.
	goldenExamples[TypeAgentStatus] = &AgentStatus{
		Header:        hdr(TypeAgentStatus),
		ClientID:      exampleClientID,
		Name:          "web-01",
		Site:          "s1",
		SiteKey:       exampleSiteKey,
		Server:        "nats://steward.example.org:4222",
		State:         "connected",
		Connected:     true,
		LastHeartbeat: t1,
		Started:       t0,
		AgentVersion:  "0.1.0",
		Capability:    1,
		Message:       "connected since 14:30",
		Policy:        &examplePolicyStatus,
		Sessions:      []SessionInfo{exampleSessionInfo},
		Content: []ContentHeld{{
			Package: "tools", Version: "1.0", Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			State: ContentInstalled, Size: 1048576, Bytes: 1048576, Path: "/var/lib/steward-agent/content/tools/1.0",
			Installed: t1, Updated: t1, Error: "chunk 3 of bin/tool: hash mismatch", Assigned: true, Reported: true, Retry: t1,
		}},
	}
	goldenExamples[TypeSettingsApplyRequest] = &SettingsApplyRequest{
		Header:   hdr(TypeSettingsApplyRequest),
		Settings: exampleSettings,
	}
	goldenExamples[TypeSettingsApplyResponse] = &SettingsApplyResponse{
		Header:   hdr(TypeSettingsApplyResponse),
		Result:   ApplyUpdated,
		Settings: exampleSettingsInfo,
		Clients:  12,
	}
	goldenExamples[TypeSettingsRequest] = &SettingsRequest{
		Header: hdr(TypeSettingsRequest),
		Ref:    "Lab remote tools",
		Force:  true,
	}
	goldenExamples[TypeSettingsResponse] = &SettingsResponse{
		Header:   hdr(TypeSettingsResponse),
		Settings: exampleSettingsInfo,
		Clients:  12,
	}
	goldenExamples[TypeSettingsListRequest] = &SettingsListRequest{Header: hdr(TypeSettingsListRequest)}
	goldenExamples[TypeSettingsListResponse] = &SettingsListResponse{
		Header:   hdr(TypeSettingsListResponse),
		Settings: []SettingsInfo{exampleSettingsInfo},
	}
	goldenExamples[TypeSettingsDeployRequest] = &SettingsDeployRequest{
		Header:     hdr(TypeSettingsDeployRequest),
		Ref:        "Lab remote tools",
		Collection: "Linux web",
	}
	goldenExamples[TypeSettingsDeployResponse] = &SettingsDeployResponse{
		Header:     hdr(TypeSettingsDeployResponse),
		Result:     DeployDeployed,
		Settings:   exampleSettingsInfo,
		Collection: exampleCollectionNamed,
		Members:    12,
		Clients:    11,
	}
	goldenExamples[TypeSettingsComplianceRequest] = &SettingsComplianceRequest{
		Header:      hdr(TypeSettingsComplianceRequest),
		Ref:         "Lab remote tools",
		SummaryOnly: true,
	}
	goldenExamples[TypeSettingsComplianceResponse] = &SettingsComplianceResponse{
		Header:   hdr(TypeSettingsComplianceResponse),
		Settings: Named{ID: exampleSettingsID, Name: "Lab remote tools"},
		Summary:  ComplianceSummary{Applied: 9, Pending: 1, Failed: 1, Unknown: 1},
		Clients: []ClientCompliance{{
			Client:          Named{ID: exampleClientID, Name: "web-01"},
			State:           ComplianceFailed,
			Revision:        42,
			AppliedRevision: 40,
			Applied:         t0,
			Reported:        t1,
			Reason:          "the signature does not verify with the pinned site key",
			Rejected:        42,
		}},
	}
	goldenExamples[TypeClientPolicyRequest] = &ClientPolicyRequest{
		Header: hdr(TypeClientPolicyRequest),
		Ref:    "web-01",
	}
	goldenExamples[TypeClientPolicyResponse] = &ClientPolicyResponse{
		Header:          hdr(TypeClientPolicyResponse),
		Client:          Named{ID: exampleClientID, Name: "web-01"},
		Revision:        42,
		AppliedRevision: 41,
		State:           CompliancePending,
		Issued:          t0,
		Reason:          "revision 41 is not newer than 42",
		Collections:     []Named{exampleCollectionNamed},
		Settings: []PolicyValue{{
			Setting:  "remoteTools.enabled",
			Value:    json.RawMessage(`true`),
			From:     &Named{ID: exampleSettingsID, Name: "Lab remote tools"},
			Priority: 10,
		}},
	}
	goldenExamples[TypePolicy] = &Policy{
		Header:   hdr(TypePolicy),
		Site:     "s1",
		ClientID: exampleClientID,
		Revision: 42,
		Issued:   t0,
		Expires:  t2,
		Settings: exampleSections,
		Origins:  exampleOrigins,
	}
	goldenExamples[TypeSignedPolicy] = &SignedPolicy{
		Header:    hdr(TypeSignedPolicy),
		Policy:    []byte(`{"type":"steward.v1.policy"}`),
		Signature: []byte("signature"),
		Key:       exampleSiteKey,
	}
	goldenExamples[TypePolicyFetchRequest] = &PolicyFetchRequest{
		Header:          hdr(TypePolicyFetchRequest),
		AppliedRevision: 41,
	}
	goldenExamples[TypePolicyFetchResponse] = &PolicyFetchResponse{
		Header:   hdr(TypePolicyFetchResponse),
		Revision: 42,
		Current:  true,
		Policy: &SignedPolicy{
			Header:    hdr(TypeSignedPolicy),
			Policy:    []byte(`{"type":"steward.v1.policy"}`),
			Signature: []byte("signature"),
			Key:       exampleSiteKey,
		},
	}
	goldenExamples[TypePolicyAck] = &PolicyAck{
		Header:          hdr(TypePolicyAck),
		Revision:        42,
		Applied:         true,
		AppliedRevision: 42,
		AppliedAt:       t1,
		Code:            RejectReplay,
		Reason:          "revision 41 is not newer than 42",
	}
	goldenExamples[TypeAgentSettingsResponse] = &AgentSettingsResponse{
		Header:  hdr(TypeAgentSettingsResponse),
		Changed: []string{"remoteAssistance.level"},
		Policy:  examplePolicyStatus,
	}
}

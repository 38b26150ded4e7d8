package contracts

import "time"

var exampleStatus = StatusMessage{
	Header:     hdr(TypeStatusMessage),
	MsgID:      StatusClientBlocked,
	Severity:   SeverityWarning,
	Component:  ComponentAdmin,
	Site:       "s1",
	Source:     exampleClientID,
	Client:     exampleClientID,
	Instance:   "steward-admin/Vx1bT3kQm9pL2sR8wN4a7c",
	Text:       "Client " + exampleClientID + " (web-01) was blocked by alice.",
	Properties: map[string]string{"client": exampleClientID, "name": "web-01", "by": "alice"},
	TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736",
	Audit:      true,
	Unknown:    true,
	Received:   t1,
	// Set for a message a child site forwarded (here: from s2).
	ForwardedFrom: "s2",
}

var exampleFilter = StatusFilter{
	Since:      t0,
	Until:      t2,
	Severities: []string{SeverityError},
	Components: []string{ComponentDespooler},
	Sources:    []string{exampleClientID},
	Clients:    []string{exampleClientID},
	MsgIDs:     []int{StatusPackageQuarantined},
	AuditOnly:  true,
}

var exampleRule = StatusRule{
	Name:        "page-despooler",
	Match:       `severity == "error" && component == "despooler"`,
	Action:      RuleExec,
	Target:      "/usr/local/bin/page {{.ID}}",
	Timeout:     Duration(5 * time.Second),
	Order:       10,
	Description: "page the on-call engineer",
	Created:     t0,
	By:          "alice",
}

var exampleThresholds = StatusThresholds{
	Info:    StatusThreshold{Warning: 2000, Critical: 5000},
	Warning: StatusThreshold{Warning: 10, Critical: 50},
	Error:   StatusThreshold{Warning: 1, Critical: 5},
}

func init() {
	goldenExamples[TypeStatusMessage] = &exampleStatus
	goldenExamples[TypeStatusListRequest] = &StatusListRequest{
		Header: hdr(TypeStatusListRequest),
		Filter: exampleFilter,
		Limit:  100,
		After:  "1042",
	}
	goldenExamples[TypeStatusListResponse] = &StatusListResponse{
		Header:   hdr(TypeStatusListResponse),
		Messages: []StatusMessage{exampleStatus},
		Next:     "1043",
		Scanned:  7,
	}
	goldenExamples[TypeStatusShowRequest] = &StatusShowRequest{
		Header:    hdr(TypeStatusShowRequest),
		MessageID: exampleMsgID,
	}
	goldenExamples[TypeStatusShowResponse] = &StatusShowResponse{
		Header:  hdr(TypeStatusShowResponse),
		Message: exampleStatus,
	}
	goldenExamples[TypeStatusFollowRequest] = &StatusFollowRequest{
		Header:   hdr(TypeStatusFollowRequest),
		FollowID: exampleTokenID,
		Filter:   exampleFilter,
		TTL:      Duration(30 * time.Second),
		Cancel:   true,
	}
	goldenExamples[TypeStatusFollowResponse] = &StatusFollowResponse{
		Header:   hdr(TypeStatusFollowResponse),
		FollowID: exampleTokenID,
		Subject:  "steward.s1.op.alice.down.status.follow." + exampleTokenID,
		Expires:  t1,
	}
	goldenExamples[TypeStatusCatalogRequest] = &StatusCatalogRequest{Header: hdr(TypeStatusCatalogRequest)}
	goldenExamples[TypeStatusCatalogResponse] = &StatusCatalogResponse{
		Header:   hdr(TypeStatusCatalogResponse),
		Messages: []StatusDef{{ID: StatusClientBlocked, Severity: SeverityWarning, Component: ComponentAdmin, Text: "Client {client} ({name}) was blocked by {by}.", Audit: true}},
	}
	goldenExamples[TypeStatusComponentsRequest] = &StatusComponentsRequest{Header: hdr(TypeStatusComponentsRequest)}
	goldenExamples[TypeStatusComponentsResponse] = &StatusComponentsResponse{
		Header: hdr(TypeStatusComponentsResponse),
		Window: Duration(time.Hour),
		Components: []ComponentState{{
			Component:  ComponentDespooler,
			State:      ComponentCritical,
			Info:       12,
			Warning:    3,
			Error:      5,
			Last:       t1,
			Reason:     "5 errors (critical at 5)",
			Thresholds: exampleThresholds,
		}},
	}
	goldenExamples[TypeStatusClientsRequest] = &StatusClientsRequest{Header: hdr(TypeStatusClientsRequest), Client: exampleClientID, After: "1795046400000000000." + exampleClientID}
	goldenExamples[TypeStatusClientsResponse] = &StatusClientsResponse{
		Header: hdr(TypeStatusClientsResponse),
		Clients: []ClientStatusSummary{{
			Client:  exampleClientID,
			Last:    exampleStatus,
			Info:    40,
			Warning: 2,
			Error:   1,
			Since:   t0,
		}},
		Next: "1795046400000000000." + exampleClientID,
	}
	goldenExamples[TypeStatusRuleAddRequest] = &StatusRuleAddRequest{Header: hdr(TypeStatusRuleAddRequest), Rule: exampleRule}
	goldenExamples[TypeStatusRuleResponse] = &StatusRuleResponse{Header: hdr(TypeStatusRuleResponse), Rule: exampleRule}
	goldenExamples[TypeStatusRuleListRequest] = &StatusRuleListRequest{Header: hdr(TypeStatusRuleListRequest)}
	goldenExamples[TypeStatusRuleListResponse] = &StatusRuleListResponse{Header: hdr(TypeStatusRuleListResponse), Rules: []StatusRule{exampleRule}}
	goldenExamples[TypeStatusRuleDeleteRequest] = &StatusRuleDeleteRequest{Header: hdr(TypeStatusRuleDeleteRequest), Name: "page-despooler"}
	goldenExamples[TypeStatusForwardAck] = &StatusForwardAck{Header: hdr(TypeStatusForwardAck), MessageID: exampleMsgID, Duplicate: true}
	goldenExamples[TypeStatusRuleTestRequest] = &StatusRuleTestRequest{
		Header: hdr(TypeStatusRuleTestRequest),
		Name:   "page-despooler",
		Filter: exampleFilter,
		Limit:  50,
	}
	goldenExamples[TypeStatusRuleTestResponse] = &StatusRuleTestResponse{
		Header:  hdr(TypeStatusRuleTestResponse),
		Rule:    exampleRule,
		Scanned: 1200,
		Matched: 1,
		Results: []StatusRuleTestResult{{
			Message:    exampleStatus,
			Would:      "exec /usr/local/bin/page " + exampleMsgID,
			ShadowedBy: "drop-noise",
		}},
		Truncated: true,
	}
}

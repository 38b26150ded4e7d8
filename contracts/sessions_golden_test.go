package contracts

import "time"

const (
	exampleSessionID = "0195a3c4-0000-7000-8000-0000000000d1"
	exampleAssistID  = "0195a3c4-0000-7000-8000-0000000000d2"
)

var exampleSessionInfo = SessionInfo{
	ID:           exampleSessionID,
	Client:       Named{ID: exampleClientID, Name: "web-01"},
	Operator:     "alice",
	Kind:         SessionShell,
	Access:       AccessFull,
	Port:         5900,
	Command:      []string{"uname", "-a"},
	State:        SessionEnded,
	Consent:      ConsentGiven,
	Requested:    t0,
	Started:      t0,
	Ended:        t1,
	EndReason:    "the shell exited with status 0",
	Abnormal:     true,
	ExitCode:     ptr(0),
	Participants: []SessionParticipant{{Operator: "alice", Access: AccessFull, Joined: t0, Left: t1}},
	BytesIn:      12,
	BytesOut:     345,
	Recording:    exampleSessionID + ".cast",
	Instance:     "steward-sessions/Vx1bT3kQm9pL2sR8wN4a7c",
}

var exampleAssist = AssistInfo{
	ID:      exampleAssistID,
	Client:  Named{ID: exampleClientID, Name: "web-01"},
	User:    "dave",
	Message: "my build fails",
	Created: t0,
	Session: exampleSessionID,
}

func init() {
	goldenExamples[TypeSessionGrant] = &SessionGrant{
		Header: hdr(TypeSessionGrant), Session: exampleSessionID, Site: "s1", ClientID: exampleClientID, Operator: "alice",
		Kind: SessionShell, Access: AccessFull, Consent: true, Join: true, Port: 5900, Command: []string{"uname", "-a"},
		Cols: 80, Rows: 24, Term: "xterm-256color", Assist: exampleAssistID, Issued: t0, Expires: t1,
		AnswerWithin: Duration(45 * time.Second), Via: "viewer:group:helpdesk",
	}
	goldenExamples[TypeSignedGrant] = &SignedGrant{Header: hdr(TypeSignedGrant), Grant: []byte(`{"session":"..."}`), Signature: []byte{1, 2, 3}, Key: exampleSiteKey}
	goldenExamples[TypeSessionGrantAnswer] = &SessionGrantAnswer{
		Header: hdr(TypeSessionGrantAnswer), Session: exampleSessionID, Accepted: true, Access: AccessView,
		Consent: ConsentGiven, User: "dave", Deny: DenyConsent, Reason: "the user refused",
	}
	goldenExamples[TypeSessionOpenRequest] = &SessionOpenRequest{
		Header: hdr(TypeSessionOpenRequest), Session: exampleSessionID, Ref: "web-01", Kind: SessionShell,
		Command: []string{"uname", "-a"}, Port: 5900, Cols: 80, Rows: 24, Term: "xterm-256color",
	}
	goldenExamples[TypeSessionJoinRequest] = &SessionJoinRequest{Header: hdr(TypeSessionJoinRequest), Session: exampleSessionID, Observe: true}
	goldenExamples[TypeSessionEndRequest] = &SessionEndRequest{Header: hdr(TypeSessionEndRequest), Session: exampleSessionID, Reason: "done"}
	// Every field is set for the golden file; a real forward carries one of join and end.
	goldenExamples[TypeSessionForward] = &SessionForward{
		Header: hdr(TypeSessionForward), Operator: "alice",
		Join: &SessionJoinRequest{Header: hdr(TypeSessionJoinRequest), Session: exampleSessionID, Observe: true},
		End:  &SessionEndRequest{Header: hdr(TypeSessionEndRequest), Session: exampleSessionID, Reason: "done"},
	}
	goldenExamples[TypeSessionOpenResponse] = &SessionOpenResponse{Header: hdr(TypeSessionOpenResponse), Session: exampleSessionInfo}
	goldenExamples[TypeSessionListRequest] = &SessionListRequest{Header: hdr(TypeSessionListRequest), Client: "web-01"}
	goldenExamples[TypeSessionListResponse] = &SessionListResponse{Header: hdr(TypeSessionListResponse), Sessions: []SessionInfo{exampleSessionInfo}}
	goldenExamples[TypeRecordingReadRequest] = &RecordingReadRequest{Header: hdr(TypeRecordingReadRequest), Session: exampleSessionID, Offset: 4096}
	goldenExamples[TypeRecordingReadResponse] = &RecordingReadResponse{
		Header: hdr(TypeRecordingReadResponse), Session: exampleSessionInfo, Data: []byte("{\"version\": 2}\n"), Size: 8192, Next: 8192,
	}
	goldenExamples[TypeSessionAssistRequest] = &SessionAssistRequest{Header: hdr(TypeSessionAssistRequest), Request: exampleAssistID, User: "dave", Message: "my build fails"}
	goldenExamples[TypeSessionAssistResponse] = &SessionAssistResponse{Header: hdr(TypeSessionAssistResponse), Request: exampleAssist}
	goldenExamples[TypeSessionAssistListRequest] = &SessionAssistListRequest{Header: hdr(TypeSessionAssistListRequest)}
	goldenExamples[TypeSessionAssistListResponse] = &SessionAssistListResponse{Header: hdr(TypeSessionAssistListResponse), Requests: []AssistInfo{exampleAssist}}
	goldenExamples[TypeSessionAssistAccept] = &SessionAssistAcceptRequest{Header: hdr(TypeSessionAssistAccept), Request: exampleAssistID, Session: exampleSessionID}
	goldenExamples[TypeSessionCheckRequest] = &SessionCheckRequest{Header: hdr(TypeSessionCheckRequest), Ref: "web-01", Kind: SessionTunnel, Port: 5900}
	goldenExamples[TypeSessionCheckResponse] = &SessionCheckResponse{
		Header: hdr(TypeSessionCheckResponse), Client: Named{ID: exampleClientID, Name: "web-01"}, Kind: SessionTunnel, Port: 5900,
		Access: AccessFull, Consent: true, PromptTimeout: Duration(30 * time.Second),
	}
}

func init() {
	goldenExamples[TypeClientFactsRequest] = &ClientFactsRequest{Header: hdr(TypeClientFactsRequest), Ref: "web-01"}
	goldenExamples[TypeClientFactsResponse] = &ClientFactsResponse{
		Header: hdr(TypeClientFactsResponse), Client: exampleClient, Collections: []string{AllSystemsID, exampleCollectionID},
		Admins: []string{"root", "dave"}, Users: []string{"dave"},
	}
	goldenExamples[TypeEffectivePolicyRequest] = &EffectivePolicyRequest{Header: hdr(TypeEffectivePolicyRequest), ClientID: exampleClientID}
	goldenExamples[TypeEffectivePolicyResponse] = &EffectivePolicyResponse{Header: hdr(TypeEffectivePolicyResponse), ClientID: exampleClientID, Revision: 7, Settings: exampleSections}
}

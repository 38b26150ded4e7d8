package contracts

const exampleCollectionID = "0195a3c4-0000-7000-8000-0000000000d1"

var exampleCollection = CollectionInfo{
	Collection: Collection{
		ID:          exampleCollectionID,
		Name:        "Linux web",
		Description: "web servers running Linux",
		BuiltIn:     true,
		Limit:       Named{ID: AllSystemsID, Name: AllSystemsName},
		Queries:     []string{`os.family == "linux" && name startsWith "web-"`},
		Include:     []Named{{ID: "0195a3c4-0000-7000-8000-0000000000d2", Name: "Pilot"}},
		Exclude:     []Named{{ID: "0195a3c4-0000-7000-8000-0000000000d3", Name: "Servers"}},
		Direct:      []Named{{ID: exampleClientID, Name: "web-01"}},
		Created:     t0,
		CreatedBy:   "alice",
		Updated:     t1,
		UpdatedBy:   "bob",
		Revision:    42,
	},
	MemberCount: 12,
	Error:       `limiting collection "0195a3c4-0000-7000-8000-0000000000d9" does not exist`,
}

func init() {
	goldenExamples[TypeCollectionUsesRequest] = &CollectionUsesRequest{Header: hdr(TypeCollectionUsesRequest), Collection: exampleCollectionID}
	goldenExamples[TypeCollectionUsesResponse] = &CollectionUsesResponse{Header: hdr(TypeCollectionUsesResponse), Uses: []string{`settings "Lab remote tools" are deployed to it`}}
	goldenExamples[TypeCollectionCreateRequest] = &CollectionCreateRequest{
		Header:      hdr(TypeCollectionCreateRequest),
		Name:        "Linux web",
		Description: "web servers running Linux",
		Limit:       AllSystemsName,
		Queries:     []string{`os.family == "linux" && name startsWith "web-"`},
		Include:     []string{"Pilot"},
		Exclude:     []string{"Servers"},
		Direct:      []string{"web-01"},
	}
	goldenExamples[TypeCollectionUpdateRequest] = &CollectionUpdateRequest{
		Header:      hdr(TypeCollectionUpdateRequest),
		Ref:         "Linux web",
		Revision:    42,
		Name:        "Linux web servers",
		Description: "every web server running Linux",
		Limit:       "Servers",
		SetQueries:  true,
		Queries:     []string{`os.family == "linux"`, `name startsWith "www-"`},
		AddInclude:  []string{"Pilot"},
		DelInclude:  []string{"Old pilot"},
		AddExclude:  []string{"Retired"},
		DelExclude:  []string{"Lab"},
		AddDirect:   []string{"db-01"},
		DelDirect:   []string{exampleClientID},
	}
	goldenExamples[TypeCollectionRequest] = &CollectionRequest{
		Header: hdr(TypeCollectionRequest),
		Ref:    "Linux web",
	}
	goldenExamples[TypeCollectionResponse] = &CollectionResponse{
		Header:     hdr(TypeCollectionResponse),
		Collection: exampleCollection,
	}
	goldenExamples[TypeCollectionListRequest] = &CollectionListRequest{
		Header: hdr(TypeCollectionListRequest),
	}
	goldenExamples[TypeCollectionListResponse] = &CollectionListResponse{
		Header:      hdr(TypeCollectionListResponse),
		Collections: []CollectionInfo{exampleCollection},
	}
	goldenExamples[TypeCollectionMembersRequest] = &CollectionMembersRequest{
		Header:  hdr(TypeCollectionMembersRequest),
		Ref:     "Linux web",
		Offset:  5000,
		Max:     100,
		Clients: []string{exampleClientID},
	}
	goldenExamples[TypeCollectionMembersResponse] = &CollectionMembersResponse{
		Header:     hdr(TypeCollectionMembersResponse),
		Collection: Named{ID: exampleCollectionID, Name: "Linux web"},
		Total:      5001,
		Members:    []Named{{ID: exampleClientID, Name: "web-01"}},
		Next:       5001,
	}
	goldenExamples[TypeCollectionPreviewRequest] = &CollectionPreviewRequest{
		Header:  hdr(TypeCollectionPreviewRequest),
		Limit:   AllSystemsName,
		Queries: []string{`any(software, .name == "openssl" && .version startsWith "1.")`},
		Include: []string{"Pilot"},
		Exclude: []string{"Servers"},
		Direct:  []string{"web-01"},
		Max:     100,
	}
	goldenExamples[TypeCollectionPreviewResponse] = &CollectionPreviewResponse{
		Header:  hdr(TypeCollectionPreviewResponse),
		Total:   1,
		Members: []Named{{ID: exampleClientID, Name: "web-01"}},
	}
	goldenExamples[TypeMembershipChanged] = &MembershipChanged{
		Header:     hdr(TypeMembershipChanged),
		Collection: Named{ID: exampleCollectionID, Name: "Linux web"},
		Added:      []string{exampleClientID},
		Removed:    []string{"0195a3c4-0000-7000-8000-0000000000c2"},
		Cause:      CauseInventory,
	}
	goldenExamples[TypeInventoryChanged] = &InventoryChanged{
		Header:   hdr(TypeInventoryChanged),
		ClientID: exampleClientID,
		Seq:      7,
		Changes: []InventoryChange{{
			Time:    t1,
			Seq:     7,
			Section: "software",
			Change:  "changed",
			Item:    "openssl",
			From:    "3.0.11",
			To:      "3.0.13",
		}},
	}
}

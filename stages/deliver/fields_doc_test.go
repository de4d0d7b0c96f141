package deliver_test

import (
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/deliver/render"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated field table in docs/routing.md")

const (
	routingDoc  = "../../docs/routing.md"
	fieldsBegin = "<!-- BEGIN generated field table: go test ./stages/deliver -run TestFieldsDoc -update-docs -->\n"
	fieldsEnd   = "<!-- END generated field table -->\n"
)

// hl7Use says which HL7 v2 fields a canonical path feeds when a
// destination takes hl7v2 (the render package's layout, docs/routing.md
// "HL7 v2"). at lists locations TestFieldsDoc checks in a rendered
// message; note is written after them.
type hl7Use struct {
	at   []string
	note string
}

var hl7Uses = map[string]hl7Use{
	"event_id":        {note: "not sent; MSH-10 (the control id) is derived from it"},
	"correlation_id":  {note: "not sent"},
	"idempotency_key": {note: "not sent"},
	"event_type":      {note: "not sent"},
	"message_type":    {at: []string{"MSH-9.1"}},
	"trigger_event":   {at: []string{"MSH-9.2"}, note: ", EVN-1 (ADT)"},

	"patient":                                       {note: "PID-3, -5, -7, -8, -11 and MRG-1 below"},
	"patient.identifiers":                           {note: "PID-3, one repetition each"},
	"patient.identifiers.value":                     {at: []string{"PID-3.1"}},
	"patient.identifiers.assigning_authority":       {at: []string{"PID-3.4"}},
	"patient.identifiers.type_code":                 {at: []string{"PID-3.5"}},
	"patient.identifiers.assigning_facility":        {at: []string{"PID-3.6"}},
	"patient.family_name":                           {at: []string{"PID-5.1"}},
	"patient.given_names":                           {at: []string{"PID-5.2", "PID-5.3"}, note: " (the first; the rest, space separated)"},
	"patient.birth_date":                            {at: []string{"PID-7"}},
	"patient.sex":                                   {at: []string{"PID-8"}},
	"patient.addresses":                             {note: "PID-11, one repetition each"},
	"patient.addresses.street":                      {at: []string{"PID-11.1"}},
	"patient.addresses.other":                       {at: []string{"PID-11.2"}},
	"patient.addresses.city":                        {at: []string{"PID-11.3"}},
	"patient.addresses.state":                       {at: []string{"PID-11.4"}},
	"patient.addresses.postal_code":                 {at: []string{"PID-11.5"}},
	"patient.addresses.country":                     {at: []string{"PID-11.6"}},
	"patient.addresses.type":                        {at: []string{"PID-11.7"}},
	"patient.prior_identifiers":                     {note: "MRG-1, one repetition each; no MRG when empty"},
	"patient.prior_identifiers.value":               {at: []string{"MRG-1.1"}},
	"patient.prior_identifiers.assigning_authority": {at: []string{"MRG-1.4"}},
	"patient.prior_identifiers.type_code":           {at: []string{"MRG-1.5"}},
	"patient.prior_identifiers.assigning_facility":  {at: []string{"MRG-1.6"}},
	"patient.telecoms":                              {note: "PID-13 (home), or PID-14 when the use is WPN, one repetition each"},
	"patient.telecoms.value":                        {at: []string{"PID-13.1"}, note: " (and XTN.4 for an e-mail address)"},
	"patient.telecoms.use":                          {at: []string{"PID-13.2"}},
	"patient.telecoms.equipment":                    {at: []string{"PID-13.3"}},
	"patient.gp":                                    {note: "PD1-4, in the structures with a PD1"},
	"patient.gp.id":                                 {at: []string{"PD1-4.1"}},
	"patient.gp.family_name":                        {at: []string{"PD1-4.2"}},
	"patient.gp.given_name":                         {at: []string{"PD1-4.3"}},

	"encounter":                     {note: "PV1; without it, `PV1\\|1\\|N` where the structure requires PV1"},
	"encounter.visit_number":        {at: []string{"PV1-19.1"}},
	"encounter.patient_class":       {at: []string{"PV1-2"}},
	"encounter.point_of_care":       {at: []string{"PV1-3.1"}},
	"encounter.room":                {at: []string{"PV1-3.2"}},
	"encounter.bed":                 {at: []string{"PV1-3.3"}},
	"encounter.facility":            {at: []string{"PV1-3.4"}},
	"encounter.attending_doctor":    {at: []string{"PV1-7.1"}},
	"encounter.admit_time":          {at: []string{"PV1-44"}},
	"encounter.discharge_time":      {at: []string{"PV1-45"}},
	"encounter.prior_point_of_care": {at: []string{"PV1-6.1"}},

	"orders":                          {note: "one ORC and OBR each; OBR-1 is numbered by careflow"},
	"orders.control":                  {at: []string{"ORC-1"}, note: " (without it, the required ORC-1 is `NW`, or `RE` in ORU)"},
	"orders.placer_order_number":      {at: []string{"ORC-2.1", "OBR-2.1"}},
	"orders.filler_order_number":      {at: []string{"ORC-3.1", "OBR-3.1"}},
	"orders.placer_namespace":         {at: []string{"ORC-2.2", "OBR-2.2"}},
	"orders.placer_universal_id":      {at: []string{"ORC-2.3", "OBR-2.3"}},
	"orders.placer_universal_id_type": {at: []string{"ORC-2.4", "OBR-2.4"}},
	"orders.filler_namespace":         {at: []string{"ORC-3.2", "OBR-3.2"}},
	"orders.filler_universal_id":      {at: []string{"ORC-3.3", "OBR-3.3"}},
	"orders.filler_universal_id_type": {at: []string{"ORC-3.4", "OBR-3.4"}},
	"orders.status":                   {at: []string{"ORC-5"}},
	"orders.service_code":             {at: []string{"OBR-4.1"}},
	"orders.service_text":             {at: []string{"OBR-4.2"}},
	"orders.service_system":           {at: []string{"OBR-4.3"}},
	"orders.service_alt_code":         {at: []string{"OBR-4.4"}},
	"orders.service_alt_text":         {at: []string{"OBR-4.5"}},
	"orders.service_alt_system":       {at: []string{"OBR-4.6"}},
	"orders.priority":                 {at: []string{"OBR-27.6"}},
	"orders.ordered_at":               {at: []string{"ORC-9"}},
	"orders.ordering_provider":        {at: []string{"ORC-12.1", "OBR-16.1"}},
	"orders.result_status":            {at: []string{"OBR-25"}},
	"orders.observed_at":              {at: []string{"OBR-7"}},

	"observations":                   {note: "one OBX each"},
	"observations.set_id":            {at: []string{"OBX-1"}},
	"observations.order_index":       {note: "no field: the OBX follows its order's OBR; kept with any observation field (see above)"},
	"observations.value_type":        {at: []string{"OBX-2"}},
	"observations.code":              {at: []string{"OBX-3.1"}},
	"observations.text":              {at: []string{"OBX-3.2"}},
	"observations.coding_system":     {at: []string{"OBX-3.3"}},
	"observations.alt_code":          {at: []string{"OBX-3.4"}},
	"observations.alt_text":          {at: []string{"OBX-3.5"}},
	"observations.alt_coding_system": {at: []string{"OBX-3.6"}},
	"observations.value":             {at: []string{"OBX-5"}},
	"observations.units":             {at: []string{"OBX-6.1"}},
	"observations.units_text":        {at: []string{"OBX-6.2"}},
	"observations.units_system":      {at: []string{"OBX-6.3"}},
	"observations.units_alt_code":    {at: []string{"OBX-6.4"}},
	"observations.units_alt_text":    {at: []string{"OBX-6.5"}},
	"observations.units_alt_system":  {at: []string{"OBX-6.6"}},
	"observations.reference_range":   {at: []string{"OBX-7"}},
	"observations.abnormal_flags":    {at: []string{"OBX-8"}},
	"observations.status":            {at: []string{"OBX-11"}},
	"observations.observed_at":       {at: []string{"OBX-14"}},

	"provenance":                       {note: "not sent, but for the times below"},
	"provenance.source_interface":      {note: "not sent"},
	"provenance.message_id":            {note: "not sent"},
	"provenance.control_id":            {note: "not sent (the inbound MSH-10)"},
	"provenance.sending_application":   {note: "not sent (MSH-3 is the destination's)"},
	"provenance.sending_facility":      {note: "not sent (MSH-4 is the destination's)"},
	"provenance.receiving_application": {note: "not sent"},
	"provenance.receiving_facility":    {note: "not sent"},
	"provenance.version":               {note: "not sent (MSH-12 is the destination's)"},
	"provenance.event_time":            {note: "EVN-2 (ADT)"},
	"provenance.message_time":          {note: "EVN-2 when event_time is empty (ADT)"},
	"provenance.ingest_time":           {note: "not sent"},
	"provenance.accept_ack_type":       {note: "not sent (MSH-15 is careflow's)"},
	"provenance.app_ack_type":          {note: "not sent (MSH-16 is careflow's)"},
	"provenance.code_maps":             {note: "not sent (the alternate codings above keep what a map replaced; docs/codes.md)"},
	"provenance.resource_type":         {note: "not sent (the FHIR resource an event was read from)"},
	"provenance.resource_id":           {note: "not sent"},
	"provenance.resource_version":      {note: "not sent"},

	"acknowledgment":                         {note: "MSA and ERR after MSH, on careflow's answers to a sender (docs/workflows.md)"},
	"acknowledgment.code":                    {at: []string{"MSA-1"}},
	"acknowledgment.control_id":              {at: []string{"MSA-2"}},
	"acknowledgment.text":                    {at: []string{"MSA-3"}},
	"acknowledgment.errors":                  {note: "one ERR each"},
	"acknowledgment.errors.code":             {at: []string{"ERR-3.1"}},
	"acknowledgment.errors.application_code": {at: []string{"ERR-5.1"}},
	"acknowledgment.errors.location":         {note: "ERR-2 (PID-5 as PID^1^5^1)"},
	"acknowledgment.errors.severity":         {at: []string{"ERR-4"}},
	"acknowledgment.errors.text":             {at: []string{"ERR-8"}},

	"next_of_kin":                   {note: "one NK1 each, in ADT_A01, ADT_A05, OML_O21 and ORU_R01"},
	"next_of_kin.family_name":       {at: []string{"NK1-2.1"}},
	"next_of_kin.given_name":        {at: []string{"NK1-2.2"}},
	"next_of_kin.relationship":      {at: []string{"NK1-3.1"}},
	"next_of_kin.relationship_text": {at: []string{"NK1-3.2"}},
	"next_of_kin.phone":             {at: []string{"NK1-5.1"}},
	"allergies":                     {note: "one AL1 each, in ADT_A01, ADT_A05, ORM_O01 and OML_O21 (not in the ORU of this table's check)"},
	"allergies.type":                {note: "AL1-2"},
	"allergies.code":                {note: "AL1-3.1"},
	"allergies.text":                {note: "AL1-3.2"},
	"allergies.coding_system":       {note: "AL1-3.3"},
	"allergies.severity":            {note: "AL1-4"},
	"allergies.reaction":            {note: "AL1-5, one repetition per ~-separated part"},
	"allergies.alt_code":            {note: "AL1-3.4"},
	"allergies.alt_text":            {note: "AL1-3.5"},
	"allergies.alt_coding_system":   {note: "AL1-3.6"},
}

// fieldsTable renders the table of every catalogue path for the doc.
func fieldsTable() string {
	var b strings.Builder
	b.WriteString("| path | kind | HL7 v2 destinations |\n|---|---|---|\n")
	for _, f := range avro.EventFields() {
		kind := f.Kind.String()
		if f.Envelope {
			kind += ", envelope"
		}
		u := hl7Uses[f.Path]
		b.WriteString("| `" + f.Path + "` | " + kind + " | " + strings.Join(u.at, ", ") + u.note + " |\n")
	}
	return b.String()
}

// TestFieldsDoc keeps docs/routing.md's field table generated from the
// catalogue: it must list exactly avro.EventFields, each with the HL7
// fields it feeds, and every location named is checked in a message
// rendered from the full fixture. -update-docs rewrites the table.
func TestFieldsDoc(t *testing.T) {
	var paths []string
	for _, f := range avro.EventFields() {
		paths = append(paths, f.Path)
		if _, ok := hl7Uses[f.Path]; !ok {
			t.Errorf("hl7Uses has no entry for %s", f.Path)
		}
	}
	for p := range hl7Uses {
		if !slices.Contains(paths, p) {
			t.Errorf("hl7Uses names %s, which is not a path of the canonical event", p)
		}
	}

	// Every location holds one of the values planted in its field.
	ev := fullEvent(t)
	m, err := hl7v2.Parse(sendFull(t, newSerde(t), render.Target{Format: avro.FormatHL7v2}, nil))
	if err != nil {
		t.Fatal(err)
	}
	planted := map[string][]string{"message_type": {ev.MessageType}, "trigger_event": {ev.TriggerEvent}}
	for value, path := range plantedClinical(t) {
		planted[path] = append(planted[path], value)
	}
	for path, u := range hl7Uses {
		for _, loc := range u.at {
			got := m.Get(loc)
			if got == "" || !slices.ContainsFunc(planted[path], func(v string) bool { return strings.Contains(got, v) }) {
				t.Errorf("%s: %s holds %q, none of the values planted in it (%v)", path, loc, got, planted[path])
			}
		}
	}

	text, err := os.ReadFile(routingDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(text)
	begin, end := strings.Index(doc, fieldsBegin), strings.Index(doc, fieldsEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s: no generated field table between %q and %q", routingDoc, fieldsBegin, fieldsEnd)
	}
	want := fieldsTable()
	if *updateDocs {
		doc = doc[:begin+len(fieldsBegin)] + want + doc[end:]
		if err := os.WriteFile(routingDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got := doc[begin+len(fieldsBegin) : end]
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)`").FindAllStringSubmatch(got, -1) {
		listed = append(listed, m[1])
	}
	if !slices.Equal(listed, paths) {
		t.Errorf("%s lists paths\n  %v\nthe catalogue has\n  %v", routingDoc, listed, paths)
	}
	if got != want {
		t.Errorf("%s: the field table is out of date; run go test ./stages/deliver -run TestFieldsDoc -update-docs", routingDoc)
	}
}

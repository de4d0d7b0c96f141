package normalise

import (
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// mapOrders walks the segments once, pairing each ORC with the OBR that
// follows it and attaching each OBX to the OBR before it. The shapes it
// accepts cover ORM^O01 (ORC then OBR, per order), OML^O21 (ORC, TQ1, OBR)
// and ORU^R01 (OBR with an optional ORC before it), as well as an ORC with
// no OBR (an order-control message such as a cancel) and an OBR with no
// ORC. NTE, SPM and other segments are skipped.
func mapOrders(m *hl7v2.Message) ([]avro.Order, []avro.Observation) {
	var (
		orders []avro.Order
		obs    []avro.Observation
		// waiting is the order an ORC started that has no OBR yet; -1
		// when none. current is the order of the latest OBR, which the
		// OBXs that follow belong to; -1 before any OBR.
		waiting, current = -1, -1
	)
	for i := 1; i <= m.NumSegments(); i++ {
		seg, _ := m.SegmentAt(i)
		switch seg.Name() {
		case "ORC":
			orders = append(orders, avro.Order{})
			fromORC(&orders[len(orders)-1], seg)
			waiting, current = len(orders)-1, -1
		case "OBR":
			if waiting < 0 {
				orders = append(orders, avro.Order{})
				waiting = len(orders) - 1
			}
			fromOBR(&orders[waiting], seg)
			waiting, current = -1, len(orders)-1
		case "TQ1":
			// TQ1 (2.5+) replaces the TQ in ORC-7/OBR-27 and follows the
			// ORC or OBR it times.
			if len(orders) > 0 {
				if p := str(seg.Field(9).Component(1)); p != "" {
					orders[len(orders)-1].Priority = p
				}
			}
		case "OBX":
			obs = append(obs, observation(seg, current))
		}
	}
	return orders, obs
}

// fromORC fills what ORC says about an order.
func fromORC(o *avro.Order, orc hl7v2.Segment) {
	o.Control = str(orc.Field(1))
	setPlacer(o, orc.Field(2))
	setFiller(o, orc.Field(3))
	o.Status = str(orc.Field(5))
	o.Priority = str(orc.Field(7).Component(6)) // TQ.6, up to 2.6
	o.OrderedAt = str(orc.Field(9).Component(1))
	o.OrderingProvider = str(orc.Field(12).Component(1))
}

// setPlacer and setFiller take a whole EI (number, namespace, universal id
// and its type) from one field, so that a number never pairs with another
// field's namespace.
func setPlacer(o *avro.Order, f hl7v2.Field) {
	o.PlacerOrderNumber, o.PlacerNamespace = str(f.Component(1)), str(f.Component(2))
	o.PlacerUniversalID, o.PlacerUniversalIDType = str(f.Component(3)), str(f.Component(4))
}

func setFiller(o *avro.Order, f hl7v2.Field) {
	o.FillerOrderNumber, o.FillerNamespace = str(f.Component(1)), str(f.Component(2))
	o.FillerUniversalID, o.FillerUniversalIDType = str(f.Component(3)), str(f.Component(4))
}

// fromOBR fills what OBR says, keeping ORC's values where both carry one:
// ORC is the order's authoritative record, OBR its detail.
func fromOBR(o *avro.Order, obr hl7v2.Segment) {
	if o.PlacerOrderNumber == "" {
		setPlacer(o, obr.Field(2))
	}
	if o.FillerOrderNumber == "" {
		setFiller(o, obr.Field(3))
	}
	svc := obr.Field(4)
	o.ServiceCode = str(svc.Component(1))
	o.ServiceText = str(svc.Component(2))
	o.ServiceSystem = str(svc.Component(3))
	o.ServiceAltCode, o.ServiceAltText, o.ServiceAltSystem = str(svc.Component(4)), str(svc.Component(5)), str(svc.Component(6))
	setIfEmpty(&o.Priority, str(obr.Field(27).Component(6)))
	setIfEmpty(&o.OrderingProvider, str(obr.Field(16).Component(1)))
	o.ResultStatus = str(obr.Field(25))
	o.ObservedAt = str(obr.Field(7).Component(1))
}

func setIfEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// observation reads one OBX. The value is OBX-5 whole: every repetition,
// unescaped, joined by "~", with any components kept joined by the
// message's component separator (a CWE answer "Y^Yes^HL70136", an ED
// "^AP^PDF^Base64^..."), because which component matters depends on OBX-2
// and the destination.
func observation(obx hl7v2.Segment, order int) avro.Observation {
	code, units := obx.Field(3), obx.Field(6)
	// OBX-3 and OBX-6 are CWE (CE before 2.5): a primary coding in
	// components 1-3 and an alternate in 4-6, kept as the sender gave it.
	return avro.Observation{
		SetID:           str(obx.Field(1)),
		OrderIndex:      order,
		ValueType:       str(obx.Field(2)),
		Code:            str(code.Component(1)),
		Text:            str(code.Component(2)),
		CodingSystem:    str(code.Component(3)),
		AltCode:         str(code.Component(4)),
		AltText:         str(code.Component(5)),
		AltCodingSystem: str(code.Component(6)),
		Value:           value(obx.Field(5), obx.Delimiters()),
		Units:           str(units.Component(1)),
		UnitsText:       str(units.Component(2)),
		UnitsSystem:     str(units.Component(3)),
		UnitsAltCode:    str(units.Component(4)),
		UnitsAltText:    str(units.Component(5)),
		UnitsAltSystem:  str(units.Component(6)),
		ReferenceRange:  str(obx.Field(7)),
		AbnormalFlags:   str(obx.Field(8)),
		Status:          str(obx.Field(11)),
		ObservedAt:      str(obx.Field(14).Component(1)),
	}
}

// value unescapes every repetition of f and joins them with "~" whatever
// repetition separator the message declared.
func value(f hl7v2.Field, d hl7v2.Delimiters) string {
	if f.IsNull() {
		return ""
	}
	if d.Repetition == '~' || f.Reps() <= 1 {
		return f.String()
	}
	b := make([]byte, 0, len(f.Raw()))
	for i := 1; i <= f.Reps(); i++ {
		if i > 1 {
			b = append(b, '~')
		}
		b = hl7v2.Unescape(b, f.Rep(i).Raw(), d)
	}
	return string(b)
}

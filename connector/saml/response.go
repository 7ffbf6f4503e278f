package saml

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	crewjam "github.com/crewjam/saml"
)

// responseCheck is one verification of a SAMLResponse: what the checks
// need besides the document.
type responseCheck struct {
	c           *Connector
	idp         *idpInfo
	pol         sigPolicy
	acs         string // our ACS URL: Destination and Recipient
	audience    string // our entity ID
	requestID   string // the flow's AuthnRequest ID; "" when unsolicited
	unsolicited bool
	now         time.Time
	// anyAssertion (tests only) takes the Response's first assertion child
	// instead of insisting on exactly one assertion in the document.
	anyAssertion bool
}

// checkResponse verifies a decoded SAMLResponse in one parse and returns
// the assertion read from the element whose signature was verified. It
// applies, in crewjam/saml's order, the checks ParseXMLResponse applied
// (saml-profiles §4.1.4.3 for the Response, §4.1.4.2 and saml-core §2 for
// the assertion); checkAssertion then adds ours. Errors carry our
// sentinel kinds (refuseKind maps them).
func (rc *responseCheck) checkResponse(doc []byte) (*crewjam.Assertion, error) {
	const resp = int32(0) // the root
	d, assertionEl, err := parseResponse(doc)
	if rc.anyAssertion && d != nil {
		assertionEl, err = -1, fmt.Errorf("%w: no assertion", ErrAssertionCount)
		d.children(resp, func(c int32, el *xel) bool {
			if el.is(nsAssertion, "Assertion") || el.is(nsAssertion, "EncryptedAssertion") {
				assertionEl, err = c, nil
				return false
			}
			return true
		})
	}
	if err != nil {
		return nil, err
	}

	// The Response: a signature it carries must be valid; if it has none,
	// the assertion must be signed (below).
	responseSigned := false
	switch err := d.verifyEnveloped(resp, &rc.pol); {
	case err == nil:
		responseSigned = true
	case !errors.Is(err, errNoSignature):
		return nil, err
	}
	if err := rc.checkResponseFields(d, resp, responseSigned); err != nil {
		return nil, err
	}

	// The assertion, decrypted if need be.
	ad, a := d, assertionEl
	if d.els[a].local == "EncryptedAssertion" {
		if ad, err = rc.c.decryptAssertion(d, a); err != nil {
			return nil, err
		}
		a = 0
	}
	// A signature the assertion carries must be valid even in a signed
	// Response (saml-core §5.3, saml-profiles §4.1.4.3); only its absence
	// is allowed then.
	switch err := ad.verifyEnveloped(a, &rc.pol); {
	case err == nil:
	case errors.Is(err, errNoSignature) && responseSigned:
	case errors.Is(err, errNoSignature):
		return nil, fmt.Errorf("%w: neither the Response nor the assertion is signed", ErrSignature)
	default:
		return nil, err
	}
	assertion, err := rc.c.readAssertion(ad, a)
	if err != nil {
		return nil, err
	}
	if err := rc.validateAssertion(assertion); err != nil {
		return nil, err
	}
	return assertion, nil
}

// parseResponse parses doc and checks its structure: a samlp:Response root
// holding exactly one assertion. It returns the document even on a
// structural refusal (for anyAssertion).
func parseResponse(doc []byte) (*xdoc, int32, error) {
	d, err := parseXML(doc)
	if err != nil {
		return nil, -1, err
	}
	if !d.els[0].is(nsProtocol, "Response") {
		return nil, -1, fmt.Errorf("%w: root is {%s}%s, not samlp:Response", ErrMalformed, d.els[0].space, d.els[0].local)
	}
	a, err := d.theAssertion(0)
	return d, a, err
}

// theAssertion returns the one saml:Assertion or saml:EncryptedAssertion
// of the document, which must be a child of the Response: an assertion
// hidden in Extensions, Advice or any other element is how signature
// wrapping smuggles a second identity.
func (d *xdoc) theAssertion(resp int32) (int32, error) {
	found, n := int32(-1), 0
	var structErr error
	for i := range d.els {
		el := &d.els[i]
		if el.space != nsAssertion || (el.local != "Assertion" && el.local != "EncryptedAssertion") || int32(i) == resp {
			continue
		}
		n++
		found = int32(i)
		if el.parent != resp && structErr == nil {
			structErr = fmt.Errorf("%w: %s below %s", ErrAssertionCount, el.local, d.els[el.parent].local)
		}
	}
	if structErr != nil {
		return -1, structErr
	}
	if n != 1 {
		return -1, fmt.Errorf("%w: found %d", ErrAssertionCount, n)
	}
	return found, nil
}

// one returns the only child {space}local of e, -1 if none; two are
// refused (encoding/xml would have merged them, silently).
func (d *xdoc) one(e int32, space, local string) (int32, error) {
	found := int32(-1)
	var err error
	d.children(e, func(c int32, el *xel) bool {
		if el.is(space, local) {
			if found >= 0 {
				err = stricter("two %s in %s", local, d.els[e].local)
				return false
			}
			found = c
		}
		return true
	})
	return found, err
}

// checkResponseFields checks the Response element (crewjam's
// parseReceivedResponse): Version, Destination, InResponseTo,
// IssueInstant, Issuer, Status.
func (rc *responseCheck) checkResponseFields(d *xdoc, resp int32, signed bool) error {
	el := &d.els[resp]
	if v, _ := el.attr("Version"); v != "2.0" {
		return fmt.Errorf("%w: Response Version %q", ErrMalformed, v)
	}
	// saml-bindings §3.5.5.2: a signed Response must name its Destination,
	// and any Destination must be where it was received.
	if dest, _ := el.attr("Destination"); signed || dest != "" {
		if dest != rc.acs {
			return fmt.Errorf("%w: Destination %q", ErrDestination, dest)
		}
	}
	irt, _ := el.attr("InResponseTo")
	switch {
	case rc.unsolicited && irt == "":
	case rc.unsolicited:
		return fmt.Errorf("%w: InResponseTo %q on an IdP-initiated response", ErrUnsolicited, irt)
	case irt == "" || irt != rc.requestID:
		return fmt.Errorf("%w: InResponseTo %q", ErrInResponseTo, irt)
	}
	issued, err := attrTime(el, "IssueInstant")
	if err != nil {
		return err
	}
	if err := checkIssueInstant("Response", issued, rc.now); err != nil {
		return err
	}
	iss, err := d.one(resp, nsAssertion, "Issuer")
	if err != nil {
		return err
	}
	if iss >= 0 && d.text(iss) != rc.idp.EntityID {
		return fmt.Errorf("%w: Response Issuer %q", ErrIssuer, d.text(iss))
	}
	status, err := d.one(resp, nsProtocol, "Status")
	if err != nil {
		return err
	}
	code := ""
	if status >= 0 {
		sc, err := d.one(status, nsProtocol, "StatusCode")
		if err != nil {
			return err
		}
		if sc >= 0 {
			code, _ = d.els[sc].attr("Value")
		}
	}
	if code != crewjam.StatusSuccess {
		return fmt.Errorf("%w: %s", ErrStatus, code)
	}
	return nil
}

// checkIssueInstant refuses a message issued more than MaxIssueDelay ago
// or more than MaxClockSkew ahead (crewjam's bounds, kept).
func checkIssueInstant(what string, issued, now time.Time) error {
	if issued.Add(crewjam.MaxIssueDelay).Before(now) {
		return fmt.Errorf("%w: %s IssueInstant %s", ErrExpired, what, issued)
	}
	if issued.Add(-crewjam.MaxClockSkew).After(now) {
		return fmt.Errorf("%w: %s IssueInstant %s is in the future", ErrNotYetValid, what, issued)
	}
	return nil
}

// attrTime reads an xs:dateTime attribute as crewjam's RelaxedTime did
// (RFC 3339, or without a zone; rounded to the millisecond); absent is the
// zero time.
func attrTime(el *xel, name string) (time.Time, error) {
	v, _ := el.attr(name)
	var t crewjam.RelaxedTime
	if err := t.UnmarshalText([]byte(v)); err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q", ErrMalformed, name, v)
	}
	return time.Time(t), nil
}

// readAssertion reads the verified assertion a of d into crewjam's type
// (the fields encoding/xml filled; our checks and identity read those).
// Unknown elements are skipped, as encoding/xml did; a second copy of a
// single-valued one is refused.
func (c *Connector) readAssertion(d *xdoc, a int32) (*crewjam.Assertion, error) {
	el := &d.els[a]
	out := &crewjam.Assertion{}
	out.ID, _ = el.attr("ID")
	out.Version, _ = el.attr("Version")
	var err error
	if out.IssueInstant, err = attrTime(el, "IssueInstant"); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	d.children(a, func(ci int32, ch *xel) bool {
		if ch.space != nsAssertion {
			return true
		}
		switch ch.local {
		case "Issuer", "Subject", "Conditions":
			if seen[ch.local] {
				err = stricter("two %s in the assertion", ch.local)
				return false
			}
			seen[ch.local] = true
		}
		switch ch.local {
		case "Issuer":
			out.Issuer = crewjam.Issuer{Value: d.text(ci)}
			out.Issuer.Format, _ = ch.attr("Format")
			out.Issuer.NameQualifier, _ = ch.attr("NameQualifier")
			out.Issuer.SPNameQualifier, _ = ch.attr("SPNameQualifier")
			out.Issuer.SPProvidedID, _ = ch.attr("SPProvidedID")
		case "Subject":
			out.Subject, err = c.readSubject(d, ci)
		case "Conditions":
			out.Conditions, err = readConditions(d, ci)
		case "AuthnStatement":
			var s crewjam.AuthnStatement
			s, err = readAuthnStatement(d, ci)
			out.AuthnStatements = append(out.AuthnStatements, s)
		case "AttributeStatement":
			var s crewjam.AttributeStatement
			s, err = c.readAttributeStatement(d, ci)
			out.AttributeStatements = append(out.AttributeStatements, s)
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func readNameID(d *xdoc, e int32) *crewjam.NameID {
	el := &d.els[e]
	n := &crewjam.NameID{Value: d.text(e)}
	n.Format, _ = el.attr("Format")
	n.NameQualifier, _ = el.attr("NameQualifier")
	n.SPNameQualifier, _ = el.attr("SPNameQualifier")
	n.SPProvidedID, _ = el.attr("SPProvidedID")
	return n
}

// readIdentifier reads a saml:NameID, or decrypts a saml:EncryptedID
// (saml-core §2.2.4) to one.
func (c *Connector) readIdentifier(d *xdoc, e int32) (*crewjam.NameID, error) {
	if d.els[e].local == "EncryptedID" {
		return c.decryptNameID(d, e)
	}
	return readNameID(d, e), nil
}

// readSubject reads Subject: its identifier (NameID, or an EncryptedID
// decrypted to a NameID; BaseID is not supported) and its confirmations.
func (c *Connector) readSubject(d *xdoc, s int32) (*crewjam.Subject, error) {
	out := &crewjam.Subject{}
	var err error
	ids := 0
	d.children(s, func(ci int32, ch *xel) bool {
		if ch.space != nsAssertion {
			return true
		}
		switch ch.local {
		case "BaseID":
			err = fmt.Errorf("%w: the assertion's Subject is a BaseID", ErrUnsupported)
		case "NameID", "EncryptedID":
			ids++
			out.NameID, err = c.readIdentifier(d, ci)
		case "SubjectConfirmation":
			var sc crewjam.SubjectConfirmation
			sc, err = c.readConfirmation(d, ci)
			out.SubjectConfirmations = append(out.SubjectConfirmations, sc)
		}
		return err == nil
	})
	if err == nil && ids > 1 {
		err = fmt.Errorf("%w: Subject has more than one identifier", ErrMalformed)
	}
	return out, err
}

func (c *Connector) readConfirmation(d *xdoc, e int32) (crewjam.SubjectConfirmation, error) {
	out := crewjam.SubjectConfirmation{}
	out.Method, _ = d.els[e].attr("Method")
	var err error
	ids, datas := 0, 0
	d.children(e, func(ci int32, ch *xel) bool {
		if ch.space != nsAssertion {
			return true
		}
		switch ch.local {
		case "NameID", "EncryptedID":
			ids++
			out.NameID, err = c.readIdentifier(d, ci)
		case "SubjectConfirmationData":
			datas++
			data := &crewjam.SubjectConfirmationData{}
			el := &d.els[ci]
			if data.NotBefore, err = attrTime(el, "NotBefore"); err != nil {
				return false
			}
			if data.NotOnOrAfter, err = attrTime(el, "NotOnOrAfter"); err != nil {
				return false
			}
			data.Recipient, _ = el.attr("Recipient")
			data.InResponseTo, _ = el.attr("InResponseTo")
			data.Address, _ = el.attr("Address")
			out.SubjectConfirmationData = data
		}
		return err == nil
	})
	if err == nil && (ids > 1 || datas > 1) {
		err = stricter("SubjectConfirmation with two identifiers or two SubjectConfirmationData")
	}
	return out, err
}

func readConditions(d *xdoc, e int32) (*crewjam.Conditions, error) {
	out := &crewjam.Conditions{}
	el := &d.els[e]
	var err error
	if out.NotBefore, err = attrTime(el, "NotBefore"); err != nil {
		return nil, err
	}
	if out.NotOnOrAfter, err = attrTime(el, "NotOnOrAfter"); err != nil {
		return nil, err
	}
	d.children(e, func(ci int32, ch *xel) bool {
		if ch.is(nsAssertion, "AudienceRestriction") {
			var r crewjam.AudienceRestriction
			n := 0
			d.children(ci, func(ai int32, au *xel) bool {
				if au.is(nsAssertion, "Audience") {
					if n == 0 {
						r.Audience.Value = d.text(ai)
					} else {
						r.AdditionalAudiences = append(r.AdditionalAudiences, crewjam.Audience{Value: d.text(ai)})
					}
					n++
				}
				return true
			})
			out.AudienceRestrictions = append(out.AudienceRestrictions, r)
		}
		return true
	})
	return out, nil
}

func readAuthnStatement(d *xdoc, e int32) (crewjam.AuthnStatement, error) {
	el := &d.els[e]
	out := crewjam.AuthnStatement{}
	var err error
	if out.AuthnInstant, err = attrTime(el, "AuthnInstant"); err != nil {
		return out, err
	}
	out.SessionIndex, _ = el.attr("SessionIndex")
	if _, ok := el.attr("SessionNotOnOrAfter"); ok {
		t, err := attrTime(el, "SessionNotOnOrAfter")
		if err != nil {
			return out, err
		}
		out.SessionNotOnOrAfter = &t
	}
	if ctx, err := d.one(e, nsAssertion, "AuthnContext"); err != nil {
		return out, err
	} else if ctx >= 0 {
		if ref, err := d.one(ctx, nsAssertion, "AuthnContextClassRef"); err != nil {
			return out, err
		} else if ref >= 0 {
			out.AuthnContext.AuthnContextClassRef = &crewjam.AuthnContextClassRef{Value: d.text(ref)}
		}
	}
	return out, nil
}

// readAttributeStatement reads the Attributes, and the EncryptedAttributes
// decrypted (saml-core §2.7.3.2), in document order.
func (c *Connector) readAttributeStatement(d *xdoc, e int32) (crewjam.AttributeStatement, error) {
	out := crewjam.AttributeStatement{}
	var err error
	d.children(e, func(ci int32, ch *xel) bool {
		switch {
		case ch.is(nsAssertion, "Attribute"):
			var a crewjam.Attribute
			a, err = readAttribute(d, ci)
			out.Attributes = append(out.Attributes, a)
		case ch.is(nsAssertion, "EncryptedAttribute"):
			var a crewjam.Attribute
			a, err = c.decryptAttribute(d, ci)
			out.Attributes = append(out.Attributes, a)
		}
		return err == nil
	})
	return out, err
}

func readAttribute(d *xdoc, e int32) (crewjam.Attribute, error) {
	el := &d.els[e]
	out := crewjam.Attribute{}
	out.Name, _ = el.attr("Name")
	out.FriendlyName, _ = el.attr("FriendlyName")
	out.NameFormat, _ = el.attr("NameFormat")
	var err error
	d.children(e, func(vi int32, v *xel) bool {
		if !v.is(nsAssertion, "AttributeValue") {
			return true
		}
		av := crewjam.AttributeValue{Value: d.text(vi)}
		av.Type, _ = v.attrNS(nsXSI, "type")
		if s, ok := v.attrNS(nsXSI, "nil"); ok {
			if av.Nil, err = strconv.ParseBool(s); err != nil {
				err = fmt.Errorf("%w: xsi:nil %q", ErrMalformed, s)
				return false
			}
		}
		var n int32
		if n, err = d.one(vi, nsAssertion, "NameID"); err != nil {
			return false
		} else if n >= 0 {
			av.NameID = readNameID(d, n)
		}
		out.Values = append(out.Values, av)
		return true
	})
	return out, err
}

// validateAssertion is crewjam's validateAssertion for the assertion we
// read: version, issue time, issuer, subject, a bearer confirmation for
// this request and ACS, an AuthnStatement, conditions, audience.
func (rc *responseCheck) validateAssertion(a *crewjam.Assertion) error {
	if a.Version != "2.0" {
		return fmt.Errorf("%w: assertion Version %q", ErrMalformed, a.Version)
	}
	if err := checkIssueInstant("assertion", a.IssueInstant, rc.now); err != nil {
		return err
	}
	if a.Issuer.Value != rc.idp.EntityID {
		return fmt.Errorf("%w: assertion issuer %q", ErrIssuer, a.Issuer.Value)
	}
	if a.Subject == nil || a.Subject.NameID == nil {
		return fmt.Errorf("%w: assertion has no Subject NameID", ErrSubject)
	}
	if a.Conditions == nil {
		return fmt.Errorf("%w: assertion has no Conditions", ErrMalformed)
	}
	// One bearer confirmation suffices (saml-core §2.4.1); the first
	// one's error is reported.
	var firstErr error
	confirmed := false
	for _, sc := range a.Subject.SubjectConfirmations {
		if sc.Method != "urn:oasis:names:tc:SAML:2.0:cm:bearer" {
			continue
		}
		err := rc.checkBearer(sc.SubjectConfirmationData)
		if err == nil {
			confirmed = true
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if !confirmed {
		if firstErr == nil {
			firstErr = fmt.Errorf("%w: no bearer SubjectConfirmation", ErrDestination)
		}
		return firstErr
	}
	if len(a.AuthnStatements) == 0 {
		return fmt.Errorf("%w: no AuthnStatement", ErrMalformed)
	}
	if a.Conditions.NotBefore.Add(-crewjam.MaxClockSkew).After(rc.now) {
		return fmt.Errorf("%w: Conditions NotBefore %s", ErrNotYetValid, a.Conditions.NotBefore)
	}
	if !a.Conditions.NotOnOrAfter.IsZero() && !rc.now.Before(a.Conditions.NotOnOrAfter.Add(crewjam.MaxClockSkew)) {
		return fmt.Errorf("%w: Conditions NotOnOrAfter %s", ErrExpired, a.Conditions.NotOnOrAfter)
	}
	// An assertion with no AudienceRestriction is valid at every SP
	// trusting the IdP: one naming us is required, and every one must
	// (saml-core §2.5.1.4).
	if len(a.Conditions.AudienceRestrictions) == 0 {
		return fmt.Errorf("%w: no AudienceRestriction", ErrAudience)
	}
	for i := range a.Conditions.AudienceRestrictions {
		ok := false
		for _, au := range a.Conditions.AudienceRestrictions[i].AllAudiences() {
			ok = ok || au.Value == rc.audience
		}
		if !ok {
			return fmt.Errorf("%w: AudienceRestriction does not name %s", ErrAudience, rc.audience)
		}
	}
	return nil
}

// checkBearer checks one bearer SubjectConfirmationData (saml-profiles
// §4.1.4.3) with crewjam's fixed skew; checkAssertion repeats the time
// checks with the connection's.
func (rc *responseCheck) checkBearer(data *crewjam.SubjectConfirmationData) error {
	if data == nil {
		return fmt.Errorf("%w: SubjectConfirmation without SubjectConfirmationData", ErrDestination)
	}
	switch {
	case rc.unsolicited && data.InResponseTo == "":
	case rc.unsolicited:
		return fmt.Errorf("%w: SubjectConfirmationData InResponseTo %q", ErrUnsolicited, data.InResponseTo)
	case data.InResponseTo == "" || data.InResponseTo != rc.requestID:
		return fmt.Errorf("%w: SubjectConfirmationData InResponseTo %q", ErrInResponseTo, data.InResponseTo)
	}
	if data.Recipient != rc.acs {
		return fmt.Errorf("%w: Recipient %q", ErrDestination, data.Recipient)
	}
	if data.NotBefore.Add(-crewjam.MaxClockSkew).After(rc.now) {
		return fmt.Errorf("%w: SubjectConfirmationData NotBefore %s", ErrNotYetValid, data.NotBefore)
	}
	if !rc.now.Before(data.NotOnOrAfter.Add(crewjam.MaxClockSkew)) {
		return fmt.Errorf("%w: SubjectConfirmationData NotOnOrAfter %s", ErrExpired, data.NotOnOrAfter)
	}
	return nil
}

package index

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Every key starts with one type byte. Strings are length-prefixed with a
// big-endian uint16 unless they are the last component; integers are
// big-endian, so that byte order is numeric order and a prefix scan over
// a folder's members returns them in UID order.
//
//	'v'                                          → schema version (uint32)
//	'g'                                          → generation (uint64), bumped by every commit
//	'i'                                          → present while a batch too big for one
//	                                               transaction is being written
//	'm' | len16 mailbox | mailbox | base         → Message
//	'b' | mailbox                                → MailboxState
//	'f' | folder                                 → FolderState
//	'u' | len16 folder | folder | uid32          → Member
//	'r' …                                        → no longer written (schema 1 wrote a
//	                                               reverse member index); skipped on load
const (
	pfxVersion = 'v'
	pfxMessage = 'm'
	pfxMailbox = 'b'
	pfxFolder  = 'f'
	pfxMember  = 'u'
	pfxReverse = 'r'

	pfxIncomplete = 'i'
)

// SchemaVersion is the layout version of this file; a store with another
// version is rebuilt.
const SchemaVersion = 1

var errKey = errors.New("index: malformed key")

func appendStr16(k []byte, s string) []byte {
	k = binary.BigEndian.AppendUint16(k, uint16(len(s)))
	return append(k, s...)
}

func readStr16(k []byte) (string, []byte, error) {
	if len(k) < 2 {
		return "", nil, errKey
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) < 2+n {
		return "", nil, errKey
	}
	return string(k[2 : 2+n]), k[2+n:], nil
}

func versionKey() []byte { return []byte{pfxVersion} }

func incompleteKey() []byte { return []byte{pfxIncomplete} }

func messageKey(mailbox, base string) []byte {
	return append(appendStr16([]byte{pfxMessage}, mailbox), base...)
}

func messagePrefix(mailbox string) []byte { return appendStr16([]byte{pfxMessage}, mailbox) }

func parseMessageKey(k []byte) (mailbox, base string, err error) {
	if len(k) < 1 || k[0] != pfxMessage {
		return "", "", errKey
	}
	mailbox, rest, err := readStr16(k[1:])
	if err != nil {
		return "", "", err
	}
	return mailbox, string(rest), nil
}

func mailboxKey(mailbox string) []byte { return append([]byte{pfxMailbox}, mailbox...) }

func folderKey(folder string) []byte { return append([]byte{pfxFolder}, folder...) }

func memberKey(folder string, uid uint32) []byte {
	return binary.BigEndian.AppendUint32(appendStr16([]byte{pfxMember}, folder), uid)
}

func memberPrefix(folder string) []byte { return appendStr16([]byte{pfxMember}, folder) }

func parseMemberKey(k []byte) (folder string, uid uint32, err error) {
	if len(k) < 1 || k[0] != pfxMember {
		return "", 0, errKey
	}
	folder, rest, err := readStr16(k[1:])
	if err != nil || len(rest) != 4 {
		return "", 0, fmt.Errorf("%w: member", errKey)
	}
	return folder, binary.BigEndian.Uint32(rest), nil
}

import { z } from 'zod'

/*
 * Every inventory string that can reach a config file or a shell command is restricted here,
 * at the door: no value can carry a newline, a quote, a brace, a semicolon or a `$`. Quoting in
 * templates is the second line of defence, not the first.
 */

const pattern = (re: RegExp, what: string) => z.string({ error: `expected ${what}` }).regex(re, { error: `expected ${what}` })

/** Names of pairs, nodes, hosts, VRRP instances, sync groups, virtual servers, sites. */
export const Name = pattern(
  /^[A-Za-z][A-Za-z0-9_-]{0,31}$/,
  'a name: a letter, then up to 31 letters, digits, "_" or "-"',
)

/** Linux interface names: at most 15 characters, none of whitespace, "/", ":" or control characters. */
export const Device = pattern(
  /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,15}$/,
  'a Linux interface name: 1-15 characters from letters, digits, "_", "." and "-"',
)

/** Logical interface names (keys of `interfaces`): same character set as names. */
export const Logical = pattern(/^[a-z][a-z0-9_]{0,31}$/, 'a logical interface name: lower-case letter, then up to 31 of a-z, 0-9, "_"')

/** iptables LOG prefixes are at most 29 characters. */
export const LogPrefix = pattern(
  /^[A-Za-z0-9 _.:=-]{1,29}$/,
  'a log prefix: 1-29 characters from letters, digits, space, "_", ".", ":", "=" and "-"',
)

/** VRRP PASS authentication is at most 8 characters. */
export const VrrpPassword = pattern(/^[A-Za-z0-9_.-]{1,8}$/, 'a VRRP password: 1-8 letters, digits, "_", "." or "-"')

export const UserName = pattern(/^[a-z_][a-z0-9_-]{0,31}$/, 'a Unix user name')

/** A local file path (SSH identity, known_hosts): no control characters. */
export const LocalPath = pattern(/^[^\x00-\x1f\x7f]{1,4096}$/, 'a file path without control characters')

/** Hostname or IP literal used to reach a node over SSH. */
export const HostName = pattern(
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
  'a host name or IPv4 address',
)

/** An HTTP check path: starts with "/", URL-safe characters only. */
export const UrlPath = pattern(/^\/[A-Za-z0-9_.~\/?=&%+-]{0,255}$/, 'a URL path starting with "/" (URL-safe characters only)')

/** A MISC_CHECK command: an absolute program path and plain arguments, no shell syntax. */
export const CheckCommand = pattern(
  /^\/[A-Za-z0-9_.\/-]{1,255}( [A-Za-z0-9_.\/=:,@-]{1,128}){0,16}$/,
  'an absolute program path with plain arguments (letters, digits, "_./=:,@-"; no quotes or shell syntax)',
)

/** SHA256 host-key fingerprint as OpenSSH prints it. */
export const Fingerprint = pattern(/^SHA256:[A-Za-z0-9+\/]{43}=?$/, 'an OpenSSH fingerprint "SHA256:..."')

export const Hex32 = pattern(/^0x[0-9a-fA-F]{1,8}$/, 'a hexadecimal mark such as 0x1')

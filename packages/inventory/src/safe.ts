import * as z from 'zod'

/*
 * Every inventory string that can reach a config file or a shell command is restricted here,
 * at the door: no value can carry a newline, a quote, a brace, a semicolon or a `$`. Quoting in
 * templates is the second line of defence, not the first.
 */

/** Shown in messages: JSON quoting makes a newline or a control character visible. */
export const shown = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v)
  return s.length > 60 ? `${s.slice(0, 57)}..."` : s
}

/**
 * A string matching `re`. The regex stays a regex (not a refine) so the JSON Schema carries it;
 * `explain` may say more precisely why a value is refused.
 */
const pattern = (re: RegExp, what: string, explain?: (s: string) => string | null) =>
  z.string({ error: `expected ${what}` }).regex(re, {
    error: (iss) => {
      const s = String(iss.input)
      return `${explain?.(s) ?? `expected ${what}`}, found ${shown(s)}`
    },
  })

/** Names of pairs, nodes, hosts, VRRP instances, sync groups, virtual servers, sites. */
export const Name = pattern(
  /^[A-Za-z][A-Za-z0-9_-]{0,31}$/,
  'a name: a letter, then up to 31 letters, digits, "_" or "-"',
)

/** Linux interface names: at most 15 characters, none of whitespace, "/", ":" or control characters. */
export const Device = pattern(
  /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,15}$/,
  'a Linux interface name: 1-15 characters from letters, digits, "_", "." and "-"',
  (s) => {
    const why = /[\x00-\x1f\x7f]/.test(s)
      ? 'a control character'
      : /\s/.test(s)
        ? 'whitespace'
        : s.includes('/')
          ? '"/"'
          : s.includes(':')
            ? '":"'
            : null
    if (why) return `a Linux interface name cannot contain ${why}`
    if (s.length > 15) return `a Linux interface name has at most 15 characters (this one has ${s.length})`
    return null
  },
)

/** Logical interface names (keys of `interfaces`): same character set as names. */
export const Logical = pattern(/^(?!constructor$)[a-z][a-z0-9_]{0,31}$/, 'a logical interface name: lower-case letter, then up to 31 of a-z, 0-9, "_"', (s) =>
  // a map key that Object.prototype already has would confuse every lookup downstream
  s === 'constructor' ? `"${s}" is reserved; expected a logical interface name` : null,
)

/** iptables LOG prefixes are at most 29 characters. */
export const LogPrefix = pattern(
  /^[A-Za-z0-9 _.:=-]{1,29}$/,
  'a log prefix: 1-29 characters from letters, digits, space, "_", ".", ":", "=" and "-"',
)

/** VRRP PASS authentication is at most 8 characters. */
export const VrrpPassword = pattern(/^[A-Za-z0-9_.-]{1,8}$/, 'a VRRP password: 1-8 letters, digits, "_", "." or "-"')

export const UserName = pattern(/^[a-z_][a-z0-9_-]{0,31}$/, 'a Unix user name')

/**
 * A local file path (SSH identity, known_hosts). It ends up in ssh options such as
 * UserKnownHostsFile=PATH, where a space would start a second path: no whitespace, quotes or
 * shell syntax.
 */
export const LocalPath = pattern(
  /^[A-Za-z0-9_.~\/+@=,:-]{1,1024}$/,
  'a file path of letters, digits and "_.~/+@=,:-" (no spaces, quotes or control characters)',
)

/** Hostname or IP literal used to reach a node over SSH. */
export const HostName = pattern(
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
  'a host name or IPv4 address',
  (s) => (s.includes(':') ? 'IPv6 is not supported yet; expected a host name or an IPv4 address' : null),
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

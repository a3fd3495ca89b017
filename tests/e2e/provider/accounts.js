// Test users and app registrations of the e2e OpenID provider.
//
// Shaped after Microsoft Entra ID: object ids (`oid`) and group ids are GUIDs, `roles` are app-role values,
// `groups` is an array of group object ids, and a user above Entra's 200-group JWT limit gets the overage
// indicator (`_claim_names` / `_claim_sources`) instead of a `groups` claim. Everything is deterministic so tests
// can assert exact values.

import { createHash } from 'node:crypto';

/** A stable GUID derived from a label, so test expectations do not depend on randomness. */
export function guid(label) {
  const h = createHash('sha256').update(String(label)).digest('hex');
  // Version 4 / RFC 4122 variant bits, so it looks like what Entra issues.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function groupIds(prefix, count) {
  return Array.from({ length: count }, (_, i) => guid(`${prefix}-group-${i}`));
}

/**
 * Users known to the provider. `groupCount` sizes the "many groups" user (Entra puts at most 200 group ids in a JWT;
 * set GROUP_COUNT above 200 to stress header/cookie limits beyond what Entra would actually emit).
 */
export function buildUsers({ groupCount = 200, emailDomain = 'example.com', upnDomain = 'contoso.example' } = {}) {
  const user = (username, name, roles, groups, extra = {}) => ({
    username,
    oid: guid(`user-${username}`),
    name,
    preferred_username: `${username}@${upnDomain}`,
    email: `${username}@${emailDomain}`,
    roles,
    groups,
    ...extra,
  });
  const users = [
    // Admin: app role Admin, a few groups.
    user('alice', 'Alice Admin', ['Admin', 'Items.Read'], groupIds('alice', 3), { department: 'Engineering' }),
    // Ordinary user: no Admin role.
    user('bob', 'Bob User', ['Reader'], groupIds('bob', 2), { department: 'Sales' }),
    // Many groups: exercises chunked cookies / Redis sessions.
    user('carol', 'Carol Manygroups', ['Reader'], groupIds('carol', groupCount), { department: 'Sales' }),
    // Group overage: no `groups` claim, Entra's distributed-claims indicator instead.
    user('dave', 'Dave Overage', ['Reader'], undefined, { overage: true }),
  ];
  return new Map(users.map((u) => [u.username, u]));
}

/**
 * Claims of a user as the provider releases them (ID token, userinfo, access token). `_claim_names` and
 * `_claim_sources` follow OpenID Connect Core 5.6.2 as Entra uses them for group overage.
 */
export function userClaims(u, tenantId) {
  const claims = {
    sub: u.oid,
    oid: u.oid,
    tid: tenantId,
    name: u.name,
    preferred_username: u.preferred_username,
    email: u.email,
    roles: u.roles,
    department: u.department,
    ver: '2.0',
  };
  if (u.overage) {
    claims._claim_names = { groups: 'src1' };
    claims._claim_sources = {
      src1: { endpoint: `https://graph.microsoft.com/v1.0/users/${u.oid}/getMemberObjects` },
    };
  } else {
    claims.groups = u.groups;
  }
  return claims;
}

/**
 * App registrations that use the client-credentials grant (daemons, Postman, curl). `roles` are the application
 * permissions an admin granted; they land in the access token's `roles` claim, and there is no `scp`.
 */
export const APP_ROLES = {
  postman: ['Admin', 'Items.Read.All'],
  daemon: ['Items.Read.All'],
};

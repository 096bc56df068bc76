// Who is logged in (the answer of GET /kapacitor/v1/me) and what they may do: the page
// offers only what the API would allow; the API enforces it regardless.

export const session = { me: null };

export function can(permission) {
  const me = session.me;
  if (!me) return false;
  return me.admin || me.permissions.includes("all") || me.permissions.includes(permission);
}

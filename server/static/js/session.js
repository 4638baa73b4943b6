// Who is signed in: `/me`, fetched once per sign-in and shared by the pages.
import { api, isSignedIn, onAuthChange } from './api.js';

let cached = null;

onAuthChange(() => {
  cached = null;
});

/** The signed-in user, or null. */
export async function currentUser() {
  if (!isSignedIn()) return null;
  if (!cached) {
    cached = api('GET', '/me', { auth: 'required' }).catch((err) => {
      cached = null;
      if (err.status === 401) return null;
      throw err;
    });
  }
  return cached;
}

export async function requireSignIn(navigate) {
  const user = await currentUser();
  if (!user) {
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    return null;
  }
  return user;
}

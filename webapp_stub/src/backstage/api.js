// Talks to the plugin's API from the page. Paths are relative to the page, so the
// same build works at /backstage/ (standalone) and /plugins/<id>/backstage/ (Mattermost).

const API = new URL('../api/v0/', window.location.href);
const PAGE_API = new URL('api/', window.location.href);

let csrfToken = '';

// The token a change must carry: the development sign-in's, or Mattermost's own
// (its MMCSRF cookie) when the page runs inside Mattermost.
function csrf() {
  if (csrfToken) {
    return csrfToken;
  }
  const match = document.cookie.match(/(?:^|;\s*)MMCSRF=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

export function setCsrfToken(token) {
  csrfToken = token || '';
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A 401's own message is meant for programs (a header is missing); people are told this.
const SIGNED_OUT = 'Your sign-in has ended: reload the page to sign in again.';

// The message of a failure that carries no message of ours: what went wrong and what to do next.
function failureMessage(status, data) {
  if (data && data.message) {
    return data.message; // Mattermost's own answers (an expired session, say) say it in message
  }
  if (status >= 500) {
    return `The server answered ${status}: try again in a moment; if it goes on, the server's log says why.`;
  }
  return `The server answered ${status}: reload the page and try again.`;
}

// Options: method, body (sent as JSON), query, ifMatch (the ETag the change is meant for)
// and tagged (resolve to {body, etag} instead of the body alone).
async function call(base, path, {method = 'GET', body, query, ifMatch, tagged = false} = {}) {
  const url = new URL(path, base);
  for (const [key, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) {
      // Repeated, and kept even when empty (severity= lists incidents without one).
      value.forEach((item) => url.searchParams.append(key, item));
    } else if (value !== undefined && value !== null && value !== '') {
      url.searchParams.set(key, value);
    }
  }
  const headers = {'X-Requested-With': 'XMLHttpRequest', Accept: 'application/json'};
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrf();
  }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  if (ifMatch) {
    headers['If-Match'] = ifMatch;
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `Could not reach the server (${error.message}): check your network connection and `
      + 'that the server is running, then try again.');
  }
  if (response.status === 204) {
    return null;
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, response.status === 401 ? SIGNED_OUT
      : (data && data.error) || failureMessage(response.status, data));
  }
  return tagged ? {body: data, etag: response.headers.get('ETag')} : data;
}

export const api = (path, options) => call(API, path, options);
export const page = (path, options) => call(PAGE_API, path, options);

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

async function call(base, path, {method = 'GET', body, query} = {}) {
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
  let response;
  try {
    response = await fetch(url, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `Could not reach the server: ${error.message}`);
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
    throw new ApiError(response.status, (data && data.error) || `The server answered ${response.status}.`);
  }
  return data;
}

export const api = (path, options) => call(API, path, options);
export const page = (path, options) => call(PAGE_API, path, options);

// Light or dark: the choice saved in localStorage ("hearth.theme":
// "light", "dark", or none = follow the system's prefers-color-scheme).
// applyTheme sets data-theme="light|dark" on the root, which style.css
// colours by, and the theme-color of the browser's bar. boot.js runs it
// before the body is parsed, so the page never flashes the other theme.

const KEY = "hearth.theme";
export const THEMES = ["system", "light", "dark"];

const darkQuery = () => matchMedia("(prefers-color-scheme: dark)");

/** The saved choice: "system", "light" or "dark". */
export function savedTheme() {
  try {
    const v = localStorage.getItem(KEY);
    return THEMES.includes(v) ? v : "system";
  } catch {
    return "system";
  }
}

/** Applies a choice (default: the saved one) to the page. */
export function applyTheme(choice = savedTheme()) {
  const dark = choice === "dark" || (choice === "system" && darkQuery().matches);
  const root = document.documentElement;
  root.dataset.theme = dark ? "dark" : "light";
  root.dataset.themeChoice = choice;
  const meta = document.querySelector('meta[name="theme-color"]');
  if (meta) meta.content = dark ? "#171513" : "#a5401b";
}

/** Saves and applies a choice. */
export function saveTheme(choice) {
  try {
    if (choice === "light" || choice === "dark") localStorage.setItem(KEY, choice);
    else localStorage.removeItem(KEY);
  } catch {
    // Applied for this page only.
  }
  applyTheme(choice);
}

/** Follows the system's changes while the choice is "system". */
export function followSystem() {
  darkQuery().addEventListener("change", () => applyTheme());
}

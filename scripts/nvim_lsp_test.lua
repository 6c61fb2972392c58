-- Run by scripts/nvim_lsp_test.sh inside headless Neovim, with the .model file open:
-- attaches `modelc lsp` to the buffer, waits for its diagnostics and writes them to stdout,
-- one per line, then quits with status 0 (diagnostics received) or 1 (none in time).
local modelc = os.getenv("MODELC")
local file = os.getenv("MODEL_FILE")
local out = io.stdout

local function finish(status)
  out:flush()
  vim.cmd((status == 0) and "qa!" or "cq!")
end

local config = {
  name = "modelc",
  cmd = { modelc, "lsp" },
  root_dir = vim.fn.fnamemodify(file, ":h"),
}
local client_id
if vim.lsp.start ~= nil then
  -- Neovim 0.8 and later.
  client_id = vim.lsp.start(config)
else
  -- Neovim 0.7 (Debian 12's): start the client and attach it to the buffer by hand.
  client_id = vim.lsp.start_client(config)
  if client_id ~= nil then
    vim.lsp.buf_attach_client(0, client_id)
  end
end
if client_id == nil then
  out:write("the language server did not start\n")
  finish(1)
  return
end

local received = vim.wait(60000, function()
  return #vim.diagnostic.get(0) > 0
end, 50)
if not received then
  out:write("no diagnostics within 60 s\n")
  finish(1)
  return
end

for _, diagnostic in ipairs(vim.diagnostic.get(0)) do
  out:write(string.format("%s %d:%d %s\n", tostring(diagnostic.code),
    diagnostic.lnum + 1, diagnostic.col + 1, diagnostic.message))
end

-- A hover on `yy`'s line must be answered too (the server is alive and serves requests).
local responses = vim.lsp.buf_request_sync(0, "textDocument/hover", {
  textDocument = { uri = vim.uri_from_fname(file) },
  position = { line = 2, character = 4 },
}, 20000)
out:write(string.format("hover answered: %s\n", tostring(responses ~= nil and next(responses) ~= nil)))

vim.lsp.stop_client(client_id)
vim.wait(5000, function()
  return vim.lsp.get_client_by_id(client_id) == nil
end, 50)
finish(0)

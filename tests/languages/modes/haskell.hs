import Control.Concurrent (threadDelay)
import Control.Exception (evaluate)
import qualified Data.ByteString as B
import System.Exit
import System.IO

main :: IO ()
main = do
  mode <- getLine
  case mode of
    "hello" -> putStrLn "hello"
    "echo" -> getContents >>= putStr
    "re" -> error "boom"
    "cpu" -> evaluate (spin 0) >> return ()
    "sleep" -> threadDelay 30000000
    "mle" -> grow []
    "ole" -> mapM_ (const (putStr (replicate 65536 'x'))) [1 :: Integer ..]
    "exit" -> exitWith (ExitFailure 3)
    _ -> return ()

spin :: Int -> Int
spin n = if n < 0 then n else spin (n + 1)

-- Each block differs in size, so that no block is shared (floated out as a constant).
grow :: [B.ByteString] -> IO ()
grow hold = do
  b <- evaluate (B.replicate (16 * 1024 * 1024 + length hold) 1)
  grow (b : hold)
